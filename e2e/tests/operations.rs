//! The binary as an operator meets it: no configuration, signals, the CLI.

use std::{process::Command, time::Duration};

use hookline_e2e::{Backend, ServerOptions, TestServer, binary, both_databases};

both_databases!(sigterm_stops_the_server_gracefully);

async fn sigterm_stops_the_server_gracefully(db: Backend) {
    let mut server = TestServer::start(db).await;
    server.anonymous().get("/healthz").await.expect(200);
    let status = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)),
        Some(true),
        "hookline did not exit cleanly on SIGTERM"
    );
}

#[tokio::test]
async fn with_no_configuration_it_creates_its_data_directory_and_master_key() {
    let cwd = tempfile::tempdir().unwrap();
    // Only the port is set (8080 may be taken on a test machine); everything else is default.
    let mut child = Command::new(binary())
        .arg("serve")
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKLINE_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = cwd.path().join("data");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(data.join("hookline.db").exists() && data.join("master.key").exists()) {
        assert!(std::time::Instant::now() < deadline, "no ./data/hookline.db and master.key after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no HOOKLINE_MASTER_KEY configured"),
        "no warning about the generated key: {stderr}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the master key must be private");
}

#[tokio::test]
async fn help_lists_every_setting() {
    let output = Command::new(binary()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for setting in [
        "HOOKLINE_LISTEN",
        "HOOKLINE_DATABASE_URL",
        "HOOKLINE_MASTER_KEY",
        "HOOKLINE_SSRF_ALLOW",
        "HOOKLINE_RETRY_SCHEDULE",
    ] {
        assert!(help.contains(setting), "--help does not mention {setting}");
    }
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_a_clear_message() {
    let output = Command::new(binary())
        .arg("serve")
        .env("HOOKLINE_DATABASE_URL", "mysql://nope")
        .env("HOOKLINE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HOOKLINE_DATABASE_URL"));
}

#[tokio::test]
async fn secrets_are_encrypted_under_the_configured_master_key() {
    let key = "B3bWJ5Ur2vIqlEi2jwqU0f6QUbUr1vsrOxSO9SjxvkQ=";
    let other_key = "Yw8M2cQe3nJ0h5kP1sT7uV9xZ2bD4fG6iL8oR0tW3yA=";
    let with_key = |k: &str| ServerOptions::default().env("HOOKLINE_MASTER_KEY", k);
    let server = TestServer::start_with(Backend::Sqlite, with_key(key)).await;
    assert!(!server.data_dir.path().join("master.key").exists(), "no key file when the key is configured");
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.post("/api/v1/app/a/endpoint", serde_json::json!({"url": "https://x.example", "uid": "e"}))
        .await
        .expect(201);
    let secret = api.get("/api/v1/app/a/endpoint/e/secret").await.expect(200);
    let key_line = api.clone();
    let (data_dir, database_url) = server.stop();

    // The same key after a restart reads the secret back.
    let restarted = TestServer::spawn(Backend::Sqlite, data_dir, database_url, with_key(key));
    let api = restarted.client_with_key(key_line.api_key());
    assert_eq!(api.get("/api/v1/app/a/endpoint/e/secret").await.expect(200), secret);
    let (data_dir, database_url) = restarted.stop();

    // Another key cannot decrypt it: the API fails closed with a generic 500, leaking nothing.
    let wrong = TestServer::spawn(Backend::Sqlite, data_dir, database_url, with_key(other_key));
    let api = wrong.client_with_key(key_line.api_key());
    let response = api.get("/api/v1/app/a/endpoint/e/secret").await;
    assert!(!response.text.contains("whsec_"), "{}", response.text);
    response.expect_error(500, "internal_error");
}

both_databases!(a_restart_on_the_same_database_keeps_every_component_running);

async fn a_restart_on_the_same_database_keeps_every_component_running(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let key = api.api_key().to_owned();
    // SIGKILL: no clean shutdown, so the first process's worker registrations are still live.
    let (data_dir, database_url) = server.stop();
    let mut restarted = TestServer::spawn(db, data_dir, database_url, ServerOptions::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(restarted.wait_exit(Duration::from_millis(10)), None, "the restarted server exited");
    let api = restarted.client_with_key(&key);
    api.get("/api/v1/app/a").await.expect(200);
}
