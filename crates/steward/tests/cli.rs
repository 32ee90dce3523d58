//! The `steward` command line: help on every verb, usage errors exit 2, and a server that
//! would be reachable from the network without authentication refuses to start.

use std::process::Command;

fn steward(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steward")).args(args).output().unwrap()
}

#[test]
fn every_verb_has_help() {
    for verb in [
        vec!["--help"],
        vec!["server", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "export", "--help"],
        vec!["user", "create", "--help"],
        vec!["token", "create", "--help"],
    ] {
        let out = steward(&verb);
        assert!(out.status.success(), "{verb:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{verb:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(steward(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(steward(&["server", "--port", "not-a-port"]).status.code(), Some(2));
    assert_eq!(steward(&["user", "create", "bob"]).status.code(), Some(2), "--role is required");
}

#[test]
fn open_server_refuses_a_non_loopback_address() {
    let dir = std::env::temp_dir().join(format!("steward-cli-{}", uuid::Uuid::new_v4().simple()));
    let uri = format!("sqlite:///{}/steward.db", dir.display());
    let out = steward(&["server", "--host", "0.0.0.0", "--port", "0", "--backend-store-uri", &uri]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0 without authentication"), "{err}");
    assert!(err.starts_with("error: "), "errors print as one lowercase chain: {err}");
}

#[test]
fn users_and_tokens_are_created_from_the_cli() {
    let dir = std::env::temp_dir().join(format!("steward-cli-{}", uuid::Uuid::new_v4().simple()));
    let uri = format!("sqlite:///{}/steward.db", dir.display());
    let out = steward(&["user", "create", "alice", "--role", "validator", "--backend-store-uri", &uri]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = steward(&["token", "create", "--user", "alice", "--backend-store-uri", &uri]);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("stw_") && token.len() > 40, "{token}");
    let out = steward(&["user", "create", "alice", "--role", "viewer", "--backend-store-uri", &uri]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = steward(&["user", "create", "bob", "--role", "overlord", "--backend-store-uri", &uri]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role 'overlord'"));
    let out = steward(&["audit", "export", "--backend-store-uri", &uri]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "default experiment, user, token: {lines:?}");
    assert!(lines[1].contains("\"action\":\"user.create\"") && lines[1].contains("\"actor\":\"cli:"), "{}", lines[1]);
}
