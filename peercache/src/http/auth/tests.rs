use super::*;
use crate::clock::ManualClock;

const ME: &str = "http://10.0.0.1:8080";

fn signer(clock: &Arc<ManualClock>) -> PeerAuth {
    PeerAuth::new(b"0123456789abcdef-cluster")
        .unwrap()
        .with_clock(clock.clone())
}

#[test]
fn a_signed_request_verifies_and_its_body_checks() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    let proof = auth.sign("PUT", ME, "/_groupcache/g/k", b"value");
    let verified = auth
        .verify("PUT", ME, "/_groupcache/g/k", Some(&proof))
        .unwrap();
    verified.check_body(b"value").unwrap();
    assert!(matches!(
        verified.check_body(b"other"),
        Err(AuthError::BodyMismatch)
    ));
}

#[test]
fn a_proof_for_another_method_path_or_secret_fails() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    let proof = auth.sign("GET", ME, "/_groupcache/g/k", b"");
    for (method, path) in [("DELETE", "/_groupcache/g/k"), ("GET", "/_groupcache/g/k2")] {
        let error = auth.verify(method, ME, path, Some(&proof)).unwrap_err();
        assert!(matches!(error, AuthError::BadSignature), "{error}");
    }
    let other = PeerAuth::new(b"another secret of 32 bytes......")
        .unwrap()
        .with_clock(clock.clone());
    let error = other
        .verify("GET", ME, "/_groupcache/g/k", Some(&proof))
        .unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
}

#[test]
fn proofs_outside_the_window_are_refused_either_way() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    let proof = auth.sign("GET", ME, "/p/g/k", b"");
    clock.advance(Duration::from_secs(31));
    let error = auth.verify("GET", ME, "/p/g/k", Some(&proof)).unwrap_err();
    assert!(matches!(error, AuthError::Expired { .. }), "{error}");
    // A proof from a clock running ahead.
    let ahead = auth.sign("GET", ME, "/p/g/k", b"");
    let early = ManualClock::starting_now();
    let error = signer(&early)
        .verify("GET", ME, "/p/g/k", Some(&ahead))
        .unwrap_err();
    assert!(matches!(error, AuthError::Expired { .. }), "{error}");
    // Within the window, fine.
    clock.advance(Duration::from_secs(29));
    auth.verify("GET", ME, "/p/g/k", Some(&ahead))
        .unwrap()
        .check_body(b"")
        .unwrap();
}

#[test]
fn a_change_cannot_be_replayed_within_the_window_but_a_get_can() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    let delete = auth.sign("DELETE", ME, "/p/g/k", b"");
    auth.verify("DELETE", ME, "/p/g/k", Some(&delete))
        .unwrap()
        .check_body(b"")
        .unwrap();
    let error = auth
        .verify("DELETE", ME, "/p/g/k", Some(&delete))
        .unwrap_err();
    assert!(matches!(error, AuthError::Replayed), "{error}");
    let get = auth.sign("GET", ME, "/p/g/k", b"");
    auth.verify("GET", ME, "/p/g/k", Some(&get))
        .unwrap()
        .check_body(b"")
        .unwrap();
    auth.verify("GET", ME, "/p/g/k", Some(&get))
        .unwrap()
        .check_body(b"")
        .unwrap();
}

#[test]
fn nonces_older_than_the_window_are_forgotten() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    for _ in 0..3000 {
        let proof = auth.sign("DELETE", ME, "/p/g/k", b"");
        auth.verify("DELETE", ME, "/p/g/k", Some(&proof))
            .unwrap()
            .check_body(b"")
            .unwrap();
        clock.advance(Duration::from_millis(100));
    }
    let remembered = auth.nonces.lock().unwrap().seen.len();
    // 300 s of changes, 30 s window: at most about 2 × 300 kept.
    assert!(remembered <= 2 * 300 + 1024, "{remembered} nonces kept");
}

#[test]
fn a_proof_for_another_node_is_refused() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    let proof = auth.sign("GET", "http://10.0.0.2:8080", "/p/g/k", b"");
    let error = auth.verify("GET", ME, "/p/g/k", Some(&proof)).unwrap_err();
    assert!(matches!(error, AuthError::WrongRecipient { .. }), "{error}");
    assert!(
        error.to_string().contains("http://10.0.0.2:8080"),
        "{error}"
    );
    // The recipient is signed: rewriting it breaks the signature.
    let forged = proof.to_str().unwrap().replace("http://10.0.0.2:8080", ME);
    let forged = HeaderValue::try_from(forged).unwrap();
    let error = auth.verify("GET", ME, "/p/g/k", Some(&forged)).unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
}

#[test]
fn a_stale_proof_without_the_secret_does_not_reveal_the_clock() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    // Anyone can write a header with any timestamp; only the secret
    // makes its signature good. Without it, the answer must not say how
    // far the timestamp is from this node's clock.
    let stranger = PeerAuth::new(b"not-the-cluster-secret!!")
        .unwrap()
        .with_clock(ManualClock::at(clock.now() - Duration::from_secs(3600)))
        .sign("GET", ME, "/p/g/k", b"");
    let error = auth
        .verify("GET", ME, "/p/g/k", Some(&stranger))
        .unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
    assert!(!error.to_string().contains("ms"), "{error}");
}

#[test]
fn a_change_signed_before_this_node_started_is_refused() {
    let clock = ManualClock::starting_now();
    let before = signer(&clock).sign("DELETE", ME, "/p/g/k", b"");
    clock.advance(Duration::from_secs(5));
    // A node (re)started after the change was signed.
    let restarted = signer(&clock);
    let error = restarted
        .verify("DELETE", ME, "/p/g/k", Some(&before))
        .unwrap_err();
    assert!(matches!(error, AuthError::BeforeStart), "{error}");
    // A get from before is fine (within the window).
    let get = PeerAuth::new(b"0123456789abcdef-cluster")
        .unwrap()
        .with_clock(ManualClock::at(clock.now() - Duration::from_secs(5)))
        .sign("GET", ME, "/p/g/k", b"");
    restarted
        .verify("GET", ME, "/p/g/k", Some(&get))
        .unwrap()
        .check_body(b"")
        .unwrap();
}

#[test]
fn malformed_and_missing_proofs_are_refused_with_a_reason() {
    let clock = ManualClock::starting_now();
    let auth = signer(&clock);
    assert!(matches!(
        auth.verify("GET", ME, "/p", None),
        Err(AuthError::Missing)
    ));
    for bad in [
        "Bearer abc",
        "PeerCache-HMAC-SHA256 ts=1",
        "PeerCache-HMAC-SHA256 ts=x,nonce=00,body=00,sig=00",
        "PeerCache-HMAC-SHA256 garbage",
        "PeerCache-HMAC-SHA256 ts=1,nonce=1,body=1,sig=1,extra=1",
    ] {
        let error = auth
            .verify("GET", ME, "/p", Some(&HeaderValue::from_static(bad)))
            .unwrap_err();
        assert!(matches!(error, AuthError::Malformed(_)), "{bad}: {error}");
    }
}

#[test]
fn short_secrets_are_refused_and_files_are_trimmed() {
    assert!(matches!(
        PeerAuth::new(b"short"),
        Err(AuthError::SecretTooShort { len: 5, .. })
    ));
    let dir = std::env::temp_dir().join(format!("peercache-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "0123456789abcdef-cluster\n").unwrap();
    let from_file = PeerAuth::from_file(&file).unwrap();
    let clock = ManualClock::starting_now();
    let proof = signer(&clock).sign("GET", ME, "/p/g/k", b"");
    from_file
        .verify("GET", ME, "/p/g/k", Some(&proof))
        .unwrap()
        .check_body(b"")
        .unwrap();
    std::fs::write(&file, "tiny\n").unwrap();
    let error = PeerAuth::from_file(&file).unwrap_err();
    assert!(error.to_string().contains("secret"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = PeerAuth::from_file(dir.join("nope")).unwrap_err();
    assert!(matches!(missing, AuthError::ReadSecret { .. }));
}
