//! Just enough DER to read a certificate's `notAfter`, for the expiry
//! gauge: `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0]
//! version OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
//! notBefore, notAfter }, … }, … }`. rustls checks the certificate itself;
//! this reads one field and refuses anything it does not understand.

/// `notAfter` of the DER certificate `der`, in Unix seconds; `None` if the
/// encoding is not what RFC 5280 describes.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // the explicit version
    }
    // serialNumber, signature, issuer.
    for want in [0x02, 0x30, 0x30] {
        let (tag, _, after) = tlv(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after) = tlv(validity)?;
    let (tag, time, _) = tlv(after)?;
    parse_time(tag, time)
}

/// One tag-length-value: (tag, value, what follows). Single-byte tags only.
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, 0x18).
fn parse_time(tag: u8, raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    let digits = s.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).ok()?;
    let at = date.with_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(at.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let cert = params.clone().self_signed(&key).unwrap();
        let want = time::macros::datetime!(2031-07-09 00:00 UTC).unix_timestamp();
        assert_eq!(not_after(cert.der()), Some(want));
        // GeneralizedTime, past 2049.
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let want = time::macros::datetime!(2051-01-02 00:00 UTC).unix_timestamp();
        assert_eq!(not_after(cert.der()), Some(want));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x00]), None);
        assert_eq!(not_after(&[0x04, 0x01, 0x00]), None);
        assert_eq!(parse_time(0x17, b"991301000000Z"), None);
        assert_eq!(parse_time(0x17, b"4901010000Z"), None);
        assert_eq!(
            parse_time(0x17, b"490101000000Z"),
            Some(time::macros::datetime!(2049-01-01 00:00 UTC).unix_timestamp())
        );
    }
}
