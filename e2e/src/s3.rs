//! A real S3-compatible server for the object-store tests: moto's server mode (PyPI
//! `moto[server]`, installed by the README's test command), one per test on a free loopback port,
//! killed when dropped. moto takes unsigned requests, so the tests create buckets and list
//! objects with plain HTTP; Hookline talks to it with signed requests like to AWS.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const INSTALL_HINT: &str = "moto's S3 server is missing: run `python3 -m pip install \"moto[server]==5.2.1\"` \
     (the README's test command installs it).";

pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts moto's server and waits until it answers.
    pub async fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("could not start python3: {err}. {INSTALL_HINT}"));
        let mut server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if client.get(&server.endpoint).send().await.is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto's server exited ({status}). {INSTALL_HINT}");
            }
            assert!(Instant::now() < deadline, "moto's server did not answer in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response =
            reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.unwrap();
        assert!(response.status().is_success(), "creating bucket {bucket}: {}", response.status());
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2), sorted.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.objects(bucket, prefix).await.into_iter().map(|(key, _)| key).collect()
    }

    /// The objects under `prefix` in `bucket` with their sizes, sorted by key. (Listing is
    /// allowed unsigned; reading an object is not, so tests compare sizes here and contents
    /// through what Hookline delivers and serves.)
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let response = reqwest::Client::new()
            .get(format!("{}/{bucket}", self.endpoint))
            .query(&[("list-type", "2"), ("prefix", prefix)])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "listing {bucket}: {}", response.status());
        let xml = response.text().await.unwrap();
        let field = |entry: &str, name: &str| {
            entry
                .split(&format!("<{name}>"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("</{name}>")).next())
                .map(str::to_owned)
        };
        let mut objects: Vec<(String, u64)> = xml
            .split("<Contents>")
            .skip(1)
            .filter_map(|entry| Some((field(entry, "Key")?, field(entry, "Size")?.parse().ok()?)))
            .collect();
        objects.sort();
        objects
    }

    /// The server settings that point Hookline's object store at `bucket/prefix` here.
    pub fn options(&self, options: crate::ServerOptions, bucket: &str, prefix: &str) -> crate::ServerOptions {
        options
            .env("HOOKLINE_OBJECT_STORE", &format!("s3://{bucket}/{prefix}"))
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "hookline-test")
            .env("AWS_SECRET_ACCESS_KEY", "hookline-test-secret")
    }
}
