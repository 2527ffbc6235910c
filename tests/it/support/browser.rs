//! A headless Chromium (Debian's `chromium` package) driven over the DevTools protocol: a
//! temporary profile, a free port, and the whole process group killed on drop. Every request
//! of the page passes through the test: the page's own (127.0.0.1) go on, stand-ins answer for
//! the URLs the test names (the CDN scripts), and any other is refused and recorded. Uncaught
//! exceptions, console errors and the browser's error messages are collected.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long the browser gets to start, to answer a command, or to show what a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Set to `1` to skip the browser tests (where Chromium cannot be installed).
pub const SKIP_VAR: &str = "SKIP_BROWSER_TESTS";
/// The page's size, and so the screenshots'.
const VIEWPORT: (u32, u32) = (1280, 900);

/// Where the screenshots go: `target/browser-screenshots/` in the crate's folder (created).
pub fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page did that the test did not ask for.
#[derive(Default)]
struct PageLog {
    /// Uncaught exceptions, console errors and the browser's error messages.
    errors: Vec<String>,
    /// Requests to other hosts that no stand-in answers (refused).
    refused: Vec<String>,
}

type Reply = oneshot::Sender<Result<Value, String>>;

/// The Chromium process, in its own process group, and its profile folder.
struct Chromium {
    child: Child,
    profile: tempfile::TempDir,
}

impl Drop for Chromium {
    /// Kills the browser and every helper process it started (renderers, GPU, zygotes).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

impl Chromium {
    /// What Chromium printed: its log in the profile folder.
    fn output(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

/// One page (tab) of a headless Chromium.
pub struct Browser {
    commands: mpsc::UnboundedSender<(Value, Reply)>,
    session: String,
    stand_ins: Arc<Mutex<HashMap<String, String>>>,
    log: Arc<Mutex<PageLog>>,
    chromium: Chromium,
}

impl Browser {
    /// Starts Chromium with a blank page, or `None` when [`SKIP_VAR`] is `1`. Panics, saying
    /// how to install it, when it is not on `PATH`.
    pub async fn launch() -> Option<Self> {
        if std::env::var(SKIP_VAR).is_ok_and(|value| value == "1") {
            eprintln!("browser test skipped: {SKIP_VAR}=1");
            return None;
        }
        let program = ["chromium", "chromium-browser"].into_iter().find_map(on_path).unwrap_or_else(|| {
            panic!(
                "the browser test needs Chromium, and none is on PATH: install Debian's package \
                 (`apt-get install chromium`), or set {SKIP_VAR}=1 to skip this test"
            )
        });
        let profile = tempfile::tempdir().unwrap();
        let output = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(&program)
            .args([
                "--headless",
                // The test browser opens only the app's own pages; as root (CI), Chromium starts
                // only without its sandbox.
                "--no-sandbox",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Its shared-memory files too, which a killed Chromium leaves behind.
            .env("TMPDIR", profile.path())
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", program.display()));
        let mut chromium = Chromium { child, profile };
        let address = devtools_address(&mut chromium).await;
        let (socket, _) = tokio_tungstenite::connect_async(address.as_str())
            .await
            .unwrap_or_else(|error| panic!("connecting to Chromium at {address}: {error}"));

        let (commands, queued) = mpsc::unbounded_channel();
        let stand_ins = Arc::new(Mutex::new(HashMap::new()));
        let log = Arc::new(Mutex::new(PageLog::default()));
        tokio::spawn(relay(socket, queued, stand_ins.clone(), log.clone()));
        let mut browser = Self { commands, session: String::new(), stand_ins, log, chromium };

        let target = browser.browser_call("Target.createTarget", json!({"url": "about:blank"})).await;
        let attached = browser
            .browser_call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}))
            .await;
        browser.session = attached["sessionId"].as_str().expect("a session id").to_owned();
        browser.call("Fetch.enable", json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})).await;
        for domain in ["Page", "Runtime", "Log"] {
            browser.call(&format!("{domain}.enable"), json!({})).await;
        }
        let (width, height) = VIEWPORT;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        Some(browser)
    }

    /// From now on, the page's requests for `url` get `script` (JavaScript) in answer.
    pub fn serve_script(&self, url: &str, script: &str) {
        self.stand_ins.lock().unwrap().insert(url.to_owned(), script.to_owned());
    }

    /// Loads `url` in the page (redirects followed); panics when it cannot be loaded.
    pub async fn goto(&self, url: &str) {
        let navigated = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(error) = navigated["errorText"].as_str() {
            panic!("loading {url}: {error}");
        }
    }

    /// The value of a JavaScript expression in the page (a promise is awaited).
    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|error| panic!("evaluating `{expression}`: {error}"))
    }

    async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let evaluated = self
            .command(
                Some(&self.session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        match evaluated.get("exceptionDetails") {
            Some(details) => Err(describe_exception(details)),
            None => Ok(evaluated["result"]["value"].clone()),
        }
    }

    /// Polls `expression` until its value is truthy, and returns it. Past [`DEADLINE`], takes
    /// a screenshot (`timed-out.png`) and panics, naming `what`.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            // A navigation in progress destroys the context: that is "not yet" too.
            let last = match self.try_eval(expression).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => value.to_string(),
                Err(error) => error,
            };
            if Instant::now() > deadline {
                let screenshot = match self.try_screenshot("timed-out").await {
                    Ok(path) => path.display().to_string(),
                    Err(error) => format!("none ({error})"),
                };
                panic!(
                    "no {what} in the browser within {DEADLINE:?} (`{expression}` was {last}); page errors: {:?}; \
                     screenshot: {screenshot}",
                    self.errors(),
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clicks the middle of the element `selector` finds, with the mouse; panics when the
    /// element is missing, has no size, or is covered there by another.
    pub async fn click(&self, selector: &str) {
        let selector_literal = serde_json::to_string(selector).unwrap();
        let target = self
            .eval(&format!(
                "(() => {{
                    const element = document.querySelector({selector_literal});
                    if (!element) return null;
                    const box = element.getBoundingClientRect();
                    const x = box.x + box.width / 2, y = box.y + box.height / 2;
                    const hit = document.elementFromPoint(x, y);
                    return {{ x, y, size: box.width * box.height, hit: hit !== null && element.contains(hit) }};
                }})()"
            ))
            .await;
        assert!(target.is_object(), "no {selector} on the page to click");
        assert!(target["size"].as_f64() > Some(0.0), "{selector} has no size: {target}");
        assert_eq!(target["hit"], true, "{selector} is covered at its middle: {target}");
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": target["x"], "y": target["y"], "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Saves a PNG of the page as `name.png` in [`screenshots_dir`]; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        self.try_screenshot(name).await.unwrap_or_else(|error| panic!("screenshot {name}: {error}"))
    }

    async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let shot = self.command(Some(&self.session), "Page.captureScreenshot", json!({"format": "png"})).await?;
        let png = STANDARD.decode(shot["data"].as_str().unwrap_or_default()).map_err(|error| error.to_string())?;
        let path = screenshots_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|error| error.to_string())?;
        Ok(path)
    }

    /// Uncaught exceptions, console errors and the browser's error messages so far.
    pub fn errors(&self) -> Vec<String> {
        self.log.lock().unwrap().errors.clone()
    }

    /// Waits until the page asked another host for a URL starting with `prefix` (refused, as
    /// every such request), and returns it; panics past [`DEADLINE`].
    pub async fn wait_for_refused(&self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(url) = self.refused_requests().into_iter().find(|url| url.starts_with(prefix)) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "no request for {prefix}... within {DEADLINE:?}: {:?}",
                self.refused_requests()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Requests of the page to other hosts that no stand-in answers (all refused).
    pub fn refused_requests(&self) -> Vec<String> {
        self.log.lock().unwrap().refused.clone()
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.command(Some(&self.session), method, params).await.unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    async fn browser_call(&self, method: &str, params: Value) -> Value {
        self.command(None, method, params).await.unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// Sends a command (to the page's session, or to the browser) and waits for its answer.
    async fn command(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let mut message = json!({"method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (reply, answer) = oneshot::channel();
        let closed = || format!("Chromium closed the connection; its output:\n{}", self.chromium.output());
        self.commands.send((message, reply)).map_err(|_| closed())?;
        match tokio::time::timeout(DEADLINE, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(closed()),
            Err(_) => Err(format!("no answer from Chromium within {DEADLINE:?}")),
        }
    }
}

/// The path of `name` in a folder of `PATH`, if there is one.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// The browser's DevTools WebSocket address, from the `DevToolsActivePort` file Chromium
/// writes into its profile once it listens (port, then path).
async fn devtools_address(chromium: &mut Chromium) -> String {
    let file = chromium.profile.path().join("DevToolsActivePort");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let written = std::fs::read_to_string(&file).unwrap_or_default();
        if let [port, path] = written.lines().collect::<Vec<_>>()[..] {
            return format!("ws://127.0.0.1:{port}{path}");
        }
        if let Ok(Some(status)) = chromium.child.try_wait() {
            panic!("Chromium exited ({status}) before it listened; its output:\n{}", chromium.output());
        }
        assert!(
            Instant::now() < deadline,
            "Chromium did not listen within {DEADLINE:?}; its output:\n{}",
            chromium.output()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Carries commands to the browser and answers back, and answers the page's paused requests
/// and records its errors as the events arrive. Ends when either side closes.
async fn relay(
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    mut queued: mpsc::UnboundedReceiver<(Value, Reply)>,
    stand_ins: Arc<Mutex<HashMap<String, String>>>,
    log: Arc<Mutex<PageLog>>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut waiting: HashMap<u64, Reply> = HashMap::new();
    let mut last_id = 0;
    loop {
        let mut outgoing = tokio::select! {
            command = queued.recv() => {
                let Some((message, reply)) = command else { break };
                last_id += 1;
                waiting.insert(last_id, reply);
                message
            }
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break };
                let Ok(message) = serde_json::from_slice::<Value>(&frame.into_data()) else { continue };
                match message["id"].as_u64() {
                    Some(id) => {
                        let answer = match message.get("error") {
                            Some(error) => Err(error.to_string()),
                            None => Ok(message["result"].clone()),
                        };
                        match waiting.remove(&id) {
                            Some(reply) => {
                                let _ = reply.send(answer);
                            }
                            // An answer to the relay's own command (to a paused request).
                            None => {
                                if let Err(error) = answer {
                                    log.lock().unwrap().errors.push(format!("answering a request: {error}"));
                                }
                            }
                        }
                        continue;
                    }
                    None => match on_event(&message, &stand_ins, &log) {
                        Some(command) => {
                            last_id += 1;
                            command
                        }
                        None => continue,
                    },
                }
            }
        };
        outgoing["id"] = json!(last_id);
        if sink.send(Message::text(outgoing.to_string())).await.is_err() {
            break;
        }
    }
}

/// Handles an event: records errors, and returns the command that answers a paused request.
fn on_event(event: &Value, stand_ins: &Mutex<HashMap<String, String>>, log: &Mutex<PageLog>) -> Option<Value> {
    let params = &event["params"];
    let error = match event["method"].as_str()? {
        "Fetch.requestPaused" => {
            let url = params["request"]["url"].as_str().unwrap_or_default();
            let request_id = &params["requestId"];
            let (method, answer) = if url.starts_with("http://127.0.0.1:") {
                ("Fetch.continueRequest", json!({"requestId": request_id}))
            } else if let Some(script) = stand_ins.lock().unwrap().get(url) {
                let headers = [("Content-Type", "text/javascript"), ("Cache-Control", "no-store")]
                    .map(|(name, value)| json!({"name": name, "value": value}));
                let body = STANDARD.encode(script);
                (
                    "Fetch.fulfillRequest",
                    json!({"requestId": request_id, "responseCode": 200, "responseHeaders": headers, "body": body}),
                )
            } else {
                log.lock().unwrap().refused.push(url.to_owned());
                ("Fetch.failRequest", json!({"requestId": request_id, "errorReason": "BlockedByClient"}))
            };
            return Some(json!({"method": method, "params": answer, "sessionId": event["sessionId"]}));
        }
        "Runtime.exceptionThrown" => describe_exception(&params["exceptionDetails"]),
        "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
            let parts: Vec<String> = params["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|arg| match (&arg["value"], arg["description"].as_str()) {
                    (Value::String(text), _) => text.clone(),
                    (Value::Null, Some(description)) => description.to_owned(),
                    (value, _) => value.to_string(),
                })
                .collect();
            format!("console.{}: {}", params["type"].as_str().unwrap_or_default(), parts.join(" "))
        }
        // Not the tab's own favicon request, which the app answers 404: the admin frames the
        // app, and a frame asks for none.
        "Log.entryAdded"
            if params["entry"]["level"] == "error"
                && !params["entry"]["url"].as_str().is_some_and(|url| url.ends_with("/favicon.ico")) =>
        {
            let entry = &params["entry"];
            format!("{}: {} ({})", entry["source"].as_str().unwrap_or_default(), entry["text"], entry["url"])
        }
        _ => return None,
    };
    log.lock().unwrap().errors.push(error);
    None
}

/// An exception's message and where it was thrown.
fn describe_exception(details: &Value) -> String {
    let message = details["exception"]["description"].as_str().or(details["text"].as_str()).unwrap_or("an exception");
    let line = details["lineNumber"].as_u64().map_or(0, |line| line + 1);
    format!("{message} ({}:{line})", details["url"].as_str().unwrap_or("?"))
}

/// JavaScript's truthiness for a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
