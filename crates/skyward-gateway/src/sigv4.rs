//! AWS Signature Version 4 for requests the gateway sends to Bedrock:
//! pure (the time is an argument), checked against AWS's published test
//! suite. The mock upstream verifies with the same canonical form, as AWS
//! does, so a request signed for another body, path, region or time is
//! refused there as it would be by Bedrock.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Long-term or temporary AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// STS session token (`x-amz-security-token`), if temporary.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish()
    }
}

/// What is signed: the request as it goes on the wire.
pub struct Signable<'a> {
    pub method: &'a str,
    /// The host header (`bedrock-runtime.us-east-1.amazonaws.com`, with
    /// `:port` when not the scheme's default).
    pub host: &'a str,
    /// The path as sent: already percent-encoded (`/model/a%3Ab/converse`).
    pub path: &'a str,
    /// The query as sent, without `?` (may be empty).
    pub query: &'a str,
    /// Other headers to sign (lower-case names).
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn amz_date(unix_s: i64) -> String {
    let (y, mo, d) = skyward_ledger::time::civil_from_days(unix_s.div_euclid(86_400));
    let s = unix_s.rem_euclid(86_400);
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Percent-encodes as SigV4 wants: everything but unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`); `/` kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query: parameters sorted by name then value, each side
/// encoded (the query as sent may hold encoded or raw characters).
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `%XX` sequences decoded (others kept as they are), as UTF-8 text.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The result of signing: the headers to add, and the parts that went in
/// (for tests and for the mock's answer on a mismatch).
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// `x-amz-date`, `x-amz-security-token` when temporary, `authorization`.
    pub headers: Vec<(&'static str, String)>,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub signed_headers: String,
}

/// Signs a request for `service` in `region` at `unix_s`. For every
/// service but S3 the path is encoded once more in the canonical form, as
/// AWS requires (a Bedrock model id `a:b` is sent as `a%3Ab` and signed
/// as `a%253Ab`).
pub fn sign(
    req: &Signable<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_s: i64,
) -> Signed {
    let date = amz_date(unix_s);
    let day = &date[..8];
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.trim().to_string()),
        ("x-amz-date".into(), date.clone()),
    ];
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    for (n, v) in req.headers {
        headers.push((n.to_ascii_lowercase(), v.to_string()));
    }
    headers.sort();
    // Values trimmed, inner runs of spaces folded to one.
    let canonical_headers: String = headers
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}:{}\n",
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_path = if service == "s3" {
        path.to_string()
    } else {
        uri_encode(path, true)
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        sha256_hex(req.payload)
    );
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = signing_key(&creds.secret_access_key, day, region, service);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let mut out: Vec<(&'static str, String)> = vec![("x-amz-date", date)];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token", t.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    Signed {
        headers: out,
        canonical_request,
        string_to_sign,
        signature,
        signed_headers,
    }
}

/// The key derived for a day, region and service.
pub fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    pub access_key_id: String,
    pub day: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(h: &str) -> Option<Authorization> {
    let rest = h.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return None,
        }
    }
    let mut c = cred?.split('/');
    let (id, day, region, service, term) = (c.next()?, c.next()?, c.next()?, c.next()?, c.next()?);
    if term != "aws4_request" || c.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key_id: id.into(),
        day: day.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: sig?.into(),
    })
}

/// The Unix time of a `YYYYMMDDTHHMMSSZ` date.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = skyward_ledger::time::days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// How far a request's date may be from the receiver's clock (AWS's
/// rule: 5 minutes).
pub const SKEW_S_MAX: i64 = 300;

/// Checks a received request's signature as AWS does, given the secret
/// of the access key it names. `headers` are the request's, names in
/// lower case. The error says why, in AWS's words where it has them.
pub fn verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload: &[u8],
    secret: &str,
    now_unix_s: i64,
) -> Result<Authorization, String> {
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let auth = h("authorization").ok_or("Missing Authentication Token")?;
    let a = parse_authorization(auth).ok_or("Authorization header is not AWS4-HMAC-SHA256")?;
    let date = h("x-amz-date").ok_or("the x-amz-date header is missing")?;
    let at = parse_amz_date(date).ok_or("x-amz-date is not a date")?;
    if (at - now_unix_s).abs() > SKEW_S_MAX {
        return Err(format!(
            "Signature expired: {date} is now earlier than or later than the allowed skew"
        ));
    }
    if !date.starts_with(&a.day) {
        return Err("the credential's date is not the request's".into());
    }
    let mut extra: Vec<(&str, &str)> = Vec::new();
    for n in &a.signed_headers {
        if matches!(n.as_str(), "host" | "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        extra.push((
            n.as_str(),
            h(n).ok_or_else(|| format!("signed header {n} is missing"))?,
        ));
    }
    let creds = Credentials {
        access_key_id: a.access_key_id.clone(),
        secret_access_key: secret.to_string(),
        session_token: h("x-amz-security-token").map(str::to_string),
    };
    let s = sign(
        &Signable {
            method,
            host: h("host").unwrap_or(""),
            path,
            query,
            headers: &extra,
            payload,
        },
        &creds,
        &a.region,
        &a.service,
        at,
    );
    if s.signed_headers
        .split(';')
        .ne(a.signed_headers.iter().map(String::as_str))
        || s.signature != a.signature
    {
        return Err("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    const SUITE_TIME: i64 = 1_440_938_160;

    #[test]
    fn the_aws_sigv4_test_suite() {
        // Signatures as AWS publishes them (get-vanilla,
        // get-vanilla-query-order-key-case, post-vanilla).
        let cases = [
            (
                "GET",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "GET",
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "POST",
                "",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ];
        for (method, query, want) in cases {
            let s = sign(
                &Signable {
                    method,
                    host: "example.amazonaws.com",
                    path: "/",
                    query,
                    headers: &[],
                    payload: b"",
                },
                &example(),
                "us-east-1",
                "service",
                SUITE_TIME,
            );
            assert_eq!(s.signature, want, "{method} ?{query}");
            assert_eq!(
                s.headers.last().unwrap().1,
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={want}")
            );
        }
        assert_eq!(
            hex(&signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830",
                "us-east-1",
                "service"
            )),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
        );
    }

    #[test]
    fn the_s3_documented_get_object_example() {
        // Amazon S3 API reference, "Example: GET Object" (Range header,
        // x-amz-content-sha256 of the empty body): S3 signs the path as is.
        let s = sign(
            &Signable {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: "",
                headers: &[
                    ("range", "bytes=0-9"),
                    (
                        "x-amz-content-sha256",
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    ),
                ],
                payload: b"",
            },
            &Credentials {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
            "us-east-1",
            "s3",
            1_369_353_600, // 2013-05-24T00:00:00Z
        );
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            s.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            s.signed_headers,
            "host;range;x-amz-content-sha256;x-amz-date"
        );
    }

    #[test]
    fn a_bedrock_model_id_is_encoded_twice_in_the_canonical_path() {
        let s = sign(
            &Signable {
                method: "POST",
                host: "bedrock-runtime.us-east-1.amazonaws.com",
                path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                query: "",
                headers: &[("content-type", "application/json")],
                payload: b"{}",
            },
            &Credentials {
                session_token: Some("tok".into()),
                ..example()
            },
            "us-east-1",
            "bedrock",
            SUITE_TIME,
        );
        assert!(s
            .canonical_request
            .contains("\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n"));
        assert_eq!(
            s.signed_headers,
            "content-type;host;x-amz-date;x-amz-security-token"
        );
        assert_eq!(s.headers[1], ("x-amz-security-token", "tok".to_string()));
        let a = parse_authorization(&s.headers[2].1).unwrap();
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.service, "bedrock");
        assert_eq!(a.signature, s.signature);
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_does_not() {
        let creds = Credentials {
            session_token: Some("tok".into()),
            ..example()
        };
        let path = "/model/m%3A1/converse";
        let body = br#"{"messages":[]}"#;
        let s = sign(
            &Signable {
                method: "POST",
                host: "127.0.0.1:9001",
                path,
                query: "",
                headers: &[],
                payload: body,
            },
            &creds,
            "eu-west-1",
            "bedrock",
            SUITE_TIME,
        );
        let mut headers: Vec<(String, String)> = s
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        headers.push(("host".into(), "127.0.0.1:9001".into()));
        let ok = |h: &[(String, String)], p: &str, b: &[u8], secret: &str, now: i64| {
            verify("POST", p, "", h, b, secret, now)
        };
        let secret = &creds.secret_access_key;
        assert_eq!(
            ok(&headers, path, body, secret, SUITE_TIME + 299)
                .unwrap()
                .region,
            "eu-west-1"
        );
        assert!(ok(&headers, path, b"{}", secret, SUITE_TIME).is_err());
        assert!(ok(&headers, "/model/m%3A2/converse", body, secret, SUITE_TIME).is_err());
        assert!(ok(&headers, path, body, "other", SUITE_TIME).is_err());
        assert!(ok(&headers, path, body, secret, SUITE_TIME + 301)
            .unwrap_err()
            .contains("expired"));
        headers.retain(|(n, _)| n != "authorization");
        assert_eq!(
            ok(&headers, path, body, secret, SUITE_TIME).unwrap_err(),
            "Missing Authentication Token"
        );
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(SUITE_TIME));
        assert_eq!(parse_amz_date("2015083OT123600Z"), None);
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(SUITE_TIME), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_399), "20000228T235959Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }
}
