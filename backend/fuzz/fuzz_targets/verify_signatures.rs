//! The signature verifiers of received webhooks (`sources::verify`), fed hostile headers and
//! bodies under every scheme. Nothing may panic, and a request signed the way the provider signs
//! (GitHub, Stripe, a generic HMAC over a template) must verify.

#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Utc};
use hmac::{Mac, digest::KeyInit};
use hookline_core::sources::verify::{Inbound, verify};
use hookline_types::{HmacAlgorithm, SignatureEncoding, VerificationIn};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Scheme {
    StandardWebhooks {
        public_key: bool,
        tolerance: Option<u32>,
    },
    Stripe {
        tolerance: Option<u32>,
    },
    Github,
    Shopify,
    Hmac {
        sha: u8,
        base64: bool,
        prefix: Option<String>,
        template: Option<String>,
        timestamped: bool,
        tolerance: Option<u32>,
    },
    Basic {
        username: String,
    },
    ApiKey {
        header: String,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    scheme: Scheme,
    secret: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    now: u32,
    /// Sign the body as the provider would and expect it to verify.
    sign: bool,
}

fn hmac_sha256(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

fuzz_target!(|input: Input| {
    let now: DateTime<Utc> =
        DateTime::from_timestamp(i64::from(input.now), 0).expect("a u32 of seconds is a time");
    let secret = input.secret.clone();
    let mut headers = input.headers.clone();
    let mut expect_ok = false;
    let scheme = match input.scheme {
        Scheme::StandardWebhooks { public_key, tolerance } => VerificationIn::StandardWebhooks {
            secret: (!public_key).then(|| format!("whsec_{secret}")),
            public_key: public_key.then(|| format!("whpk_{secret}")),
            tolerance_seconds: tolerance,
        },
        Scheme::Stripe { tolerance } => {
            if input.sign && tolerance.is_none_or(|t| t > 0) {
                let t = now.timestamp().to_string();
                let content = [t.as_bytes(), b".", &input.body].concat();
                let sig = hex::encode(hmac_sha256(secret.as_bytes(), &content));
                headers.insert(0, ("Stripe-Signature".to_owned(), format!("t={t},v1=deadbeef,v1={sig}")));
                expect_ok = true;
            }
            VerificationIn::Stripe { secret: secret.clone(), tolerance_seconds: tolerance }
        }
        Scheme::Github => {
            if input.sign {
                let sig = hex::encode(hmac_sha256(secret.as_bytes(), &input.body));
                headers.insert(0, ("X-Hub-Signature-256".to_owned(), format!("sha256={sig}")));
                expect_ok = true;
            }
            VerificationIn::Github { secret: secret.clone() }
        }
        Scheme::Shopify => VerificationIn::Shopify { secret: secret.clone() },
        Scheme::Hmac { sha, base64, prefix, template, timestamped, tolerance } => VerificationIn::Hmac {
            secret: secret.clone(),
            header: "X-Signature".to_owned(),
            algorithm: match sha % 3 {
                0 => HmacAlgorithm::Sha1,
                1 => HmacAlgorithm::Sha256,
                _ => HmacAlgorithm::Sha512,
            },
            encoding: if base64 { SignatureEncoding::Base64 } else { SignatureEncoding::Hex },
            prefix,
            template,
            timestamp_header: timestamped.then(|| "X-Timestamp".to_owned()),
            tolerance_seconds: tolerance,
        },
        Scheme::Basic { username } => VerificationIn::Basic { username, password: secret.clone() },
        Scheme::ApiKey { header } => VerificationIn::ApiKey { header, value: secret.clone() },
    };
    let request = Inbound { headers: &headers, body: &input.body, now };
    let outcome = verify(&scheme, &request);
    // The same request gets the same answer.
    assert_eq!(outcome.is_ok(), verify(&scheme, &request).is_ok());
    if expect_ok {
        assert!(outcome.is_ok(), "a correctly signed request was refused: {outcome:?}");
    }
});
