//! A small W3C WebDriver client for the dashboard's browser tests: a real headless Chromium driven
//! through ChromeDriver over HTTP.
//!
//! Lookups wait for the page (the dashboard renders asynchronously), and every timeout panics with
//! the page's URL and visible text so a failure can be read without re-running it.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{ChildGuard, workspace_root};

/// The key under which WebDriver passes element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const FIND_TIMEOUT: Duration = Duration::from_secs(10);
const WAIT_TIMEOUT: Duration = Duration::from_secs(15);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);
/// JavaScript prelude: `all`, the elements matching the selector `arguments[0]`, and `visible(e)`,
/// whether one is displayed (an `<option>` counts as its `<select>`).
const MATCHES: &str = "const all = [...document.querySelectorAll(arguments[0])];
    const visible = e => (e.closest('select') || e).checkVisibility({visibilityProperty: true});";

/// A headless Chromium session. Dropping it closes the browser and stops ChromeDriver.
pub struct Browser {
    http: reqwest::Client,
    port: u16,
    session: String,
    // Dropped in this order, after the session is deleted: ChromeDriver, then the profile.
    _driver: ChildGuard,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// Fails the test (rather than letting it pass vacuously) when the dashboard has not been built.
pub fn require_dashboard() {
    let wasm = workspace_root().join("frontend/dist/pkg/hookline_dashboard_bg.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run ./scripts/test.sh, which builds the dashboard \
         (or just `bash -c 'source scripts/lib.sh; build_dashboard'`)",
        wasm.display()
    );
}

/// A binary from the environment variable `var`, else `default`; panics naming the package.
fn binary(var: &str, default: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.exists(),
        "{} not found: install the Debian package {package} (./scripts/test.sh does), or set {var}",
        path.display()
    );
    path
}

/// Sends one WebDriver command; `Err` carries the WebDriver error and message.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let mut body: Value = response.json().await.map_err(|e| e.to_string())?;
    match body["value"]["error"].as_str() {
        Some(error) => Err(format!("{error}: {}", body["value"]["message"])),
        None => Ok(body["value"].take()),
    }
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a fresh headless Chromium session.
    pub async fn start() -> Browser {
        let driver = binary("HOOKLINE_CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let chromium = binary("HOOKLINE_CHROMIUM", "/usr/bin/chromium", "chromium");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while send(&http, Method::GET, &format!("{base}/status"), None)
            .await
            .map_or(true, |s| s["ready"] != true)
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(Instant::now() < deadline, "chromedriver was not ready within 10 s");
            tokio::time::sleep(POLL).await;
        }
        let driver = ChildGuard(child);
        let profile = tempfile::Builder::new().prefix("hookline-chromium-").tempdir().expect("temp dir");
        let mut args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let session = send(&http, Method::POST, &format!("{base}/session"), Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("creating a Chromium session ({}): {e}", chromium.display()));
        let session = session["sessionId"].as_str().expect("a session id").to_owned();
        Browser { http, port, session, _driver: driver, _profile: profile }
    }

    /// A command on this session (`path` after `/session/{id}`); panics on a WebDriver error.
    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    async fn try_cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}/session/{}{path}", self.port, self.session);
        send(&self.http, method, &url, body).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd(Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.cmd(Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Runs `script` as a function body (`return ...`; its arguments are `arguments[i]`, where
    /// [`Element::as_arg`] passes an element) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Saves a PNG of the viewport to `<target>/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.cmd(Method::GET, "/screenshot", None).await;
        let png =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("PNG");
        let target =
            std::env::var("CARGO_TARGET_DIR").map_or_else(|_| workspace_root().join("target"), PathBuf::from);
        let dir = workspace_root().join(target).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// The first displayed element matching `css`, waiting up to 10 s for one.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let script = format!("{MATCHES} return all.find(visible) ?? null;");
        match self.poll(&script, vec![json!(css)], FIND_TIMEOUT).await {
            Some(element) => self.element(&element),
            None => panic!("no displayed element matches `{css}` after 10 s; {}", self.context().await),
        }
    }

    /// Every element matching `css` now, displayed or not, in document order (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.execute(&format!("{MATCHES} return all;"), vec![json!(css)]).await;
        found.as_array().into_iter().flatten().map(|e| self.element(e)).collect()
    }

    /// The first displayed element matching `css` whose text contains `needle`, waiting up to 10 s.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> Element<'_> {
        let script = format!(
            "{MATCHES} return all.find(e => visible(e) && e.innerText.includes(arguments[1])) ?? null;"
        );
        match self.poll(&script, vec![json!(css), json!(needle)], FIND_TIMEOUT).await {
            Some(element) => self.element(&element),
            None => {
                let texts = format!("{MATCHES} return all.map(e => e.innerText);");
                let texts = self.execute(&texts, vec![json!(css)]).await;
                panic!(
                    "no `{css}` contains {needle:?} after 10 s (their texts: {texts}); {}",
                    self.context().await
                )
            }
        }
    }

    /// Waits up to 15 s for the JavaScript `expression` to be true (a throw counts as false);
    /// `what` names the wait in the panic.
    pub async fn wait_until(&self, expression: &str, what: &str) {
        let script = format!("try {{ return !!({expression}); }} catch (e) {{ return false; }}");
        if self.poll(&script, vec![], WAIT_TIMEOUT).await.is_none() {
            let last =
                format!("try {{ return String({expression}); }} catch (e) {{ return 'throws ' + e; }}");
            let last = self.execute(&last, vec![]).await;
            panic!(
                "timed out after 15 s waiting for {what} (`{expression}` is {last}); {}",
                self.context().await
            );
        }
    }

    /// Asserts that, once the page has settled, no displayed element matches `css`.
    pub async fn absent(&self, css: &str) {
        self.settle().await;
        let script = format!("{MATCHES} return all.filter(visible).length;");
        let count = self.execute(&script, vec![json!(css)]).await;
        assert!(count == 0, "{count} displayed element(s) match `{css}`; {}", self.context().await);
    }

    /// Waits (at most 5 s, without failing) until the page is loaded and its DOM has not changed
    /// for 500 ms.
    pub async fn settle(&self) {
        let script = "const s = window.__hooklineSettle ??= (() => {
                const s = {last: performance.now()};
                new MutationObserver(() => s.last = performance.now()).observe(document,
                    {subtree: true, childList: true, attributes: true, characterData: true});
                return s;
            })();
            return document.readyState === 'complete' && performance.now() - s.last > 500;";
        self.poll(script, vec![], SETTLE_TIMEOUT).await;
    }

    /// Runs `script` every 100 ms until it returns something other than null or false.
    async fn poll(&self, script: &str, args: Vec<Value>, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, args.clone()).await;
            if !value.is_null() && value != false {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's URL and the start of its text, for panic messages (never panics itself).
    async fn context(&self) -> String {
        let url = self.try_cmd(Method::GET, "/url", None).await.unwrap_or_else(|e| e.into());
        let script = "return document.body ? document.body.innerText.slice(0, 2000) : '<no body>';";
        let text =
            self.try_cmd(Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await;
        let text = text.map_or_else(|e| e, |t| t.as_str().unwrap_or_default().to_owned());
        format!("page {url}, whose text begins:\n{text}")
    }

    fn element(&self, reference: &Value) -> Element<'_> {
        let id = reference[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("not an element: {reference}"));
        Element { browser: self, id: id.to_owned() }
    }
}

impl Drop for Browser {
    /// Deletes the session (closing Chromium) with a plain blocking request: no runtime in drop.
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            // The answer comes once Chromium has quit.
            let _ = stream.write_all(request.as_bytes()).and_then(|()| stream.read(&mut [0; 512]));
        }
    }
}

impl Element<'_> {
    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.browser.cmd(method, &format!("/element/{}{path}", self.id), body).await
    }

    pub async fn click(&self) {
        self.cmd(Method::POST, "/click", Some(json!({}))).await;
    }

    /// Types `text` into the element (WebDriver "send keys").
    pub async fn type_text(&self, text: &str) {
        self.cmd(Method::POST, "/value", Some(json!({"text": text}))).await;
    }

    pub async fn clear(&self) {
        self.cmd(Method::POST, "/clear", Some(json!({}))).await;
    }

    /// The element's rendered text.
    pub async fn text(&self) -> String {
        self.cmd(Method::GET, "/text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute, or None when the element has none by that name.
    pub async fn attr(&self, name: &str) -> Option<String> {
        self.cmd(Method::GET, &format!("/attribute/{name}"), None).await.as_str().map(str::to_owned)
    }

    /// The `value` property (an input's current value).
    pub async fn value(&self) -> String {
        self.cmd(Method::GET, "/property/value", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// This element as an argument for [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ELEMENT_KEY: self.id})
    }
}
