use super::*;

const NOT_PEM: &str = "hello, I am not a certificate\n";
const BAD_BASE64: &str = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
const UNTERMINATED: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n";
const ENCRYPTED: &str =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";

fn ca_error(pem: &str) -> String {
    TlsConfig::builder()
        .ca(Pem::memory(pem))
        .build()
        .unwrap_err()
        .to_string()
}

fn key_error(pem: &str) -> String {
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    TlsConfig::builder()
        .server_cert(Pem::memory(ca.cert.pem()), Pem::memory(pem))
        .build()
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_pem_is_named() {
    let error = ca_error(NOT_PEM);
    assert!(
        error.contains("CA bundle (in-memory PEM) holds no certificate")
            && error.contains("-----BEGIN CERTIFICATE-----"),
        "{error}"
    );
    assert!(ca_error("").contains("holds no certificate"));
    let error = ca_error(BAD_BASE64);
    assert!(
        error.contains("the CA bundle (in-memory PEM) is not valid PEM"),
        "{error}"
    );
    let error = ca_error(UNTERMINATED);
    assert!(error.contains("is not valid PEM"), "{error}");
    let error = ca_error("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(
        error.contains("certificate 1 of the CA bundle (in-memory PEM) cannot be trusted"),
        "{error}"
    );
}

#[test]
fn missing_and_wrong_keys_are_named() {
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    // A certificate where the key should be.
    let error = key_error(&other.cert.pem());
    assert!(
        error.contains("the private key (in-memory PEM) holds no private key")
            && error.contains("PKCS#8"),
        "{error}"
    );
    assert!(!error.contains("encrypted"), "{error}");
    let error = key_error(ENCRYPTED);
    assert!(
        error.contains("encrypted keys are not supported"),
        "{error}"
    );
    // Another certificate's key.
    let error = key_error(&other.signing_key.serialize_pem());
    assert!(
        error.contains("does not belong to the first certificate"),
        "{error}"
    );
}

#[test]
fn missing_files_are_named() {
    let error = TlsConfig::builder()
        .ca(Pem::file("/nonexistent/ca.pem"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("cannot read the CA bundle /nonexistent/ca.pem:"),
        "{error}"
    );
}

#[test]
fn incomplete_configurations_say_what_is_missing() {
    let error = TlsConfig::builder().build().unwrap_err().to_string();
    assert!(error.contains("--tls-ca"), "{error}");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (chain, key) = (
        Pem::memory(cert.cert.pem()),
        Pem::memory(cert.signing_key.serialize_pem()),
    );
    let error = TlsConfig::builder()
        .client_cert(chain.clone(), key.clone())
        .server_cert(chain.clone(), key.clone())
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("need a CA bundle"), "{error}");
    let error = TlsConfig::builder()
        .server_cert(chain.clone(), key.clone())
        .require_client_cert(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("requiring client certificates"), "{error}");

    let both = TlsConfig::builder()
        .ca(chain.clone())
        .server_cert(chain.clone(), key.clone())
        .client_cert(chain, key)
        .require_client_cert(true)
        .build()
        .unwrap();
    assert!(both.client_config().is_some() && both.server_config().is_some());
    assert!(both.requires_client_cert());
    assert_eq!(
        both.server_config().unwrap().alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn debug_never_shows_key_bytes() {
    let pem = Pem::memory("-----BEGIN PRIVATE KEY-----\nsecret\n");
    assert_eq!(format!("{pem:?}"), "Memory(35 bytes)");
}
