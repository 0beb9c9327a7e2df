//! How a value type meets clap: one value parser, [`Checked`], so that every
//! flag parsed into one of this module's types fails the same way, as one
//! line naming the flag and saying what is wrong (`invalid value for
//! --org-id: must be ...`), and never repeats the value: a proxy URL may
//! hold a password, and `CREDAGENT_*` variables may come from Secrets.
//!
//! A type with a `FromStr` gets its parser through [`flag_value!`] (or
//! [`string_value!`]; clap's `value_parser!` then finds it); a flag whose rule is not a type
//! of its own (a positive count, a bounded duration) names a function with
//! `value_parser = checked(f)`.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// A clap value parser over a parse function, whose error names the flag
/// and not the value.
pub struct Checked<T, E> {
    parse: Parse<T, E>,
}

enum Parse<T, E> {
    Str(fn(&str) -> Result<T, E>),
    Os(fn(&OsStr) -> Result<T, E>),
}

/// The value parser of `parse` (UTF-8 values only).
pub fn checked<T, E>(parse: fn(&str) -> Result<T, E>) -> Checked<T, E> {
    Checked {
        parse: Parse::Str(parse),
    }
}

/// The value parser of `parse`, for paths (any bytes the OS allows).
pub fn checked_os<T, E>(parse: fn(&OsStr) -> Result<T, E>) -> Checked<T, E> {
    Checked {
        parse: Parse::Os(parse),
    }
}

impl<T, E> Clone for Checked<T, E> {
    fn clone(&self) -> Self {
        Self {
            parse: match self.parse {
                Parse::Str(f) => Parse::Str(f),
                Parse::Os(f) => Parse::Os(f),
            },
        }
    }
}

impl<T, E> TypedValueParser for Checked<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Display + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let fail = |reason: &dyn Display| {
            let flag = arg
                .and_then(clap::Arg::get_long)
                .map_or_else(|| "an argument".to_owned(), |l| format!("--{l}"));
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value for {flag}: {reason}\n"),
            )
            .with_cmd(cmd)
        };
        match self.parse {
            Parse::Str(parse) => {
                let s = value.to_str().ok_or_else(|| fail(&"not UTF-8"))?;
                parse(s).map_err(|e| fail(&e))
            }
            Parse::Os(parse) => parse(value).map_err(|e| fail(&e)),
        }
    }
}

/// Makes clap parse each type through its `FromStr`, with [`Checked`]'s
/// errors.
macro_rules! flag_value {
    ($($t:ty),* $(,)?) => {$(
        impl clap::builder::ValueParserFactory for $t {
            type Parser = $crate::config::flag::Checked<$t, <$t as std::str::FromStr>::Err>;
            fn value_parser() -> Self::Parser {
                $crate::config::flag::checked(<$t as std::str::FromStr>::from_str)
            }
        }
    )*};
}
pub(crate) use flag_value;

/// [`flag_value!`] for the types that are a checked string with an
/// `as_str`, whose Debug is that string (what `--check-config` prints:
/// `region: Some("US-EAST-04A")`).
macro_rules! string_value {
    ($($t:ty),* $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self.as_str(), f)
            }
        }
        $crate::config::flag::flag_value!($t);
    )*};
}
pub(crate) use string_value;

/// A value a blank flag or variable leaves unset (`--sidecar-cpu-limit ""`,
/// an empty `CREDAGENT_REGION` a chart wrote): `None`; otherwise `T`, read
/// with surrounding whitespace trimmed. The field is typed
/// `std::option::Option<T>` (which clap's derive leaves to the parser,
/// where a plain `Option` would mean "flag absent") and given a default.
pub fn blank_is_none<T: FromStr>(s: &str) -> Result<Option<T>, T::Err> {
    let s = s.trim();
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// A count or rate above zero.
pub fn positive<T>(s: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + Default,
    T::Err: Display,
{
    let n: T = s.parse().map_err(|e: T::Err| e.to_string())?;
    if n > T::default() {
        Ok(n)
    } else {
        Err("must be > 0".into())
    }
}

/// A finite rate above zero.
pub fn positive_rate(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if n.is_finite() && n > 0.0 {
        Ok(n)
    } else {
        Err("must be > 0".into())
    }
}

/// A path that names a file (not `/` or `..`).
pub fn file_path(s: &OsStr) -> Result<PathBuf, &'static str> {
    let path = PathBuf::from(s);
    if path.file_name().is_some() {
        Ok(path)
    } else {
        Err("must name a file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_flag_and_not_the_value() {
        let cmd = clap::Command::new("t");
        let arg = clap::Arg::new("proxy").long("proxy");
        let p = checked(|s: &str| s.parse::<u16>().map_err(|_| "must be a port"));
        let e = p
            .parse_ref(&cmd, Some(&arg), OsStr::new("hunter2"))
            .unwrap_err();
        let text = e.render().to_string();
        assert!(
            text.starts_with("error: invalid value for --proxy: must be a port"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(p.parse_ref(&cmd, Some(&arg), OsStr::new("80")).unwrap(), 80);
    }

    #[test]
    fn small_rules() {
        assert_eq!(blank_is_none::<u8>(" 7 "), Ok(Some(7)));
        assert_eq!(blank_is_none::<u8>(" "), Ok(None));
        assert!(blank_is_none::<u8>("x").is_err());
        assert_eq!(positive::<usize>("3"), Ok(3));
        assert_eq!(positive::<usize>("0"), Err("must be > 0".into()));
        assert!(positive::<u32>("-1").is_err());
        assert_eq!(positive_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "NaN"] {
            assert!(positive_rate(bad).is_err(), "{bad}");
        }
        assert!(file_path(OsStr::new("/")).is_err());
        assert!(file_path(OsStr::new("/a/..")).is_err());
        assert_eq!(file_path(OsStr::new("/a/b")), Ok(PathBuf::from("/a/b")));
    }
}
