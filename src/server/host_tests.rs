use super::*;

fn req(target: &str, hosts: &[&str]) -> Request<()> {
    let mut b = Request::get(target);
    for h in hosts {
        b = b.header(HOST, *h);
    }
    b.body(()).unwrap()
}

fn node() -> HostNames {
    HostNames::of(&[
        "169.254.170.23:80".parse().unwrap(),
        "[fd00:ec2::23]:80".parse().unwrap(),
    ])
    .unwrap()
}

#[test]
fn exactly_one_host_naming_a_listener() {
    let names = node();
    for host in [
        "169.254.170.23",
        "169.254.170.23:80",
        "[fd00:ec2::23]",
        "[FD00:EC2:0:0::23]:80",
    ] {
        assert_eq!(
            names.check(&req("/v1/credentials", &[host])),
            Ok(()),
            "{host}"
        );
    }
    let cases: &[(&[&str], HostError)] = &[
        (&[], HostError::Missing),
        (&["169.254.170.23", "169.254.170.23"], HostError::Several),
        (&["169.254.170.23", "evil.example"], HostError::Several),
        (&[""], HostError::Malformed),
        (&["user@169.254.170.23"], HostError::Malformed),
        (&["169.254.170.23/x"], HostError::Malformed),
        (&["fd00:ec2::23"], HostError::Malformed),
        (&["[not-an-ip]"], HostError::Malformed),
        (&["evil.example"], HostError::Elsewhere),
        (&["169.254.170.23:8080"], HostError::Elsewhere),
        (&["169.254.170.2"], HostError::Elsewhere),
    ];
    for (hosts, want) in cases {
        assert_eq!(
            names.check(&req("/v1/credentials", hosts)),
            Err(*want),
            "{hosts:?}"
        );
    }
}

#[test]
fn an_absolute_form_target_must_name_a_listener_too() {
    let names = node();
    let ok = req("http://169.254.170.23/v1/credentials", &["169.254.170.23"]);
    assert_eq!(names.check(&ok), Ok(()));
    let elsewhere = req("http://evil.example/v1/credentials", &["169.254.170.23"]);
    assert_eq!(names.check(&elsewhere), Err(HostError::Elsewhere));
    // https's default port is 443, not a listener's.
    let tls = req("https://169.254.170.23/v1/credentials", &["169.254.170.23"]);
    assert_eq!(names.check(&tls), Err(HostError::Elsewhere));
    let no_host = req("http://169.254.170.23/v1/credentials", &[]);
    assert_eq!(names.check(&no_host), Err(HostError::Missing));
}

#[test]
fn a_wildcard_listener_still_checks_the_form() {
    assert!(HostNames::of(&["0.0.0.0:80".parse().unwrap()]).is_none());
    assert_eq!(check_form(&req("/", &["anything.example:81"])), Ok(()));
    assert_eq!(check_form(&req("/", &[])), Err(HostError::Missing));
    assert_eq!(check_form(&req("/", &["a", "b"])), Err(HostError::Several));
}

#[test]
fn names_are_compared_without_case() {
    let names = HostNames::default().with_name("LocalHost", 8182);
    assert!(names.allows("localhost:8182"));
    assert!(names.allows("LOCALHOST:8182"));
    assert!(!names.allows("localhost"));
}

#[test]
fn statuses() {
    assert_eq!(HostError::Missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(HostError::Several.status(), StatusCode::BAD_REQUEST);
    assert_eq!(HostError::Malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(HostError::Elsewhere.status(), StatusCode::FORBIDDEN);
}
