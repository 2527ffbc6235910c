// Static checks that the Dockerfile, compose.yaml and the deploy guides (docs/deploy/) still fit
// the app. CI cannot build the image (no registry is reachable), so this reads the files instead:
//   - every environment variable they set for the app is one the README's environment table lists;
//   - the Dockerfile builds with `cargo build --release --locked`, on a Rust no older than
//     Cargo.toml's rust-version, copies folders that exist and that .dockerignore keeps, runs the
//     binary Cargo.toml names, and exposes the port it sets;
//   - every health-check path they use is routed in src/lib.rs.
// Run from the repository root: node .ci/check-deploy.mjs. No dependencies.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { posix } from "node:path";

const errors = [];
const warnings = [];
const read = (path) => readFileSync(path, "utf8");
const fail = (message) => errors.push(message);

// Paths the PostgreSQL work adds; a warning, not a failure, until src/lib.rs routes them.
const PENDING_ROUTES = new Set([]);

// ---- the app's variables: the first column of the README's environment table ----------------
function documentedVariables() {
  const readme = read("README.md");
  const start = readme.indexOf("\n## Environment");
  if (start < 0) throw new Error("README.md has no '## Environment' section");
  const section = readme.slice(start + 1).split(/\n## /)[0];
  const patterns = [];
  for (const line of section.split("\n")) {
    if (!line.startsWith("| `")) continue;
    const firstCell = line.split("|")[1];
    for (const [, name] of firstCell.matchAll(/`([A-Z_<>]+)`/g)) {
      // OAUTH_<NAME>_TOKEN_URL style: <NAME> is any provider; `_SUFFIX` continues the row's prefix.
      const source = name.startsWith("_") ? `[A-Z0-9_]+${name}` : name.replace(/<[A-Z]+>/g, "[A-Z0-9_]+");
      patterns.push(new RegExp(`^${source}$`));
    }
  }
  if (patterns.length < 10) throw new Error(`README.md's environment table yielded only ${patterns.length} names`);
  return (name) => patterns.some((pattern) => pattern.test(name));
}

// ---- variables set by the deploy files ------------------------------------------------------
const setVariables = []; // [name, where]

function dockerfileInstructions(text) {
  // Joins continuation lines; drops comments.
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
}

const dockerfile = read("Dockerfile");
const instructions = dockerfileInstructions(dockerfile);
const dockerEnv = {};
for (const line of instructions.filter((line) => /^ENV\s/.test(line))) {
  for (const [, name, value] of line.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) {
    dockerEnv[name] = value;
    setVariables.push([name, "Dockerfile ENV"]);
  }
}

// compose.yaml: the keys under services.app.environment (a mapping or a list of NAME=value).
function composeAppEnvironment(text) {
  const lines = text.split("\n");
  const names = [];
  let inApp = false;
  let envIndent = -1;
  for (const line of lines) {
    if (/^\S/.test(line)) inApp = false;
    if (/^ {2}app:\s*$/.test(line)) inApp = true;
    else if (/^ {2}\S/.test(line)) inApp = false;
    if (!inApp) continue;
    const indent = line.search(/\S/);
    if (/^\s+environment:\s*$/.test(line)) {
      envIndent = indent;
      continue;
    }
    if (envIndent >= 0) {
      if (indent >= 0 && indent <= envIndent) envIndent = -1;
      else {
        const match = line.match(/^\s+(?:-\s*)?([A-Z_][A-Z0-9_]*)\s*[:=]/);
        if (match) names.push(match[1]);
      }
    }
  }
  return names;
}
const compose = read("compose.yaml");
for (const name of composeAppEnvironment(compose)) setVariables.push([name, "compose.yaml (app)"]);

const guides = readdirSync("docs/deploy").filter((file) => file.endsWith(".md")).map((file) => `docs/deploy/${file}`);
const render = read("docs/deploy/render.yaml");
for (const [, name] of render.matchAll(/^\s*- key:\s*([A-Z_][A-Z0-9_]*)/gm)) setVariables.push([name, "docs/deploy/render.yaml"]);

const codeBlocks = []; // [lang, body, file]
for (const file of guides) {
  const text = read(file);
  for (const [, lang, body] of text.matchAll(/```(\w*)\n([\s\S]*?)```/g)) codeBlocks.push([lang, body, file]);
  // Tables: backticked upper-case names in the first cell are variables of the app.
  for (const line of text.split("\n")) {
    if (!line.startsWith("| `")) continue;
    for (const [, name] of line.split("|")[1].matchAll(/`([A-Z][A-Z0-9_]+)`/g)) setVariables.push([name, `${file} (table)`]);
  }
}
for (const [lang, body, file] of codeBlocks) {
  if (lang === "toml") {
    // fly.toml's [env] table.
    const env = body.split(/^\s*\[env\]\s*$/m)[1];
    if (env) {
      for (const line of env.split(/^\s*\[/m)[0].split("\n")) {
        const match = line.match(/^\s*([A-Z_][A-Z0-9_]*)\s*=/);
        if (match) setVariables.push([match[1], `${file} (fly.toml [env])`]);
      }
    }
    continue;
  }
  const joined = body.replace(/\\\n/g, " ");
  for (const command of joined.split("\n")) {
    if (/\bfly secrets set\b/.test(command)) {
      for (const [, name] of command.matchAll(/(?:^|\s)([A-Z_][A-Z0-9_]*)=/g)) setVariables.push([name, `${file} (fly secrets set)`]);
    }
    for (const [, list] of command.matchAll(/--(?:set|update)-(?:env-vars|secrets)[ =]"?([^"\s]+)"?/g)) {
      for (const item of list.split(",")) setVariables.push([item.split("=")[0], `${file} (gcloud)`]);
    }
    for (const [, name] of command.matchAll(/\s-e\s+([A-Z_][A-Z0-9_]*)=/g)) setVariables.push([name, `${file} (docker run -e)`]);
  }
}

const isDocumented = documentedVariables();
for (const [name, where] of setVariables) {
  if (!isDocumented(name)) fail(`${where} sets ${name}, which README.md's environment table does not list`);
}

// ---- the Dockerfile against Cargo.toml and the repository -----------------------------------
const cargo = read("Cargo.toml");
const packageName = cargo.match(/^name\s*=\s*"([^"]+)"/m)[1];
const rustVersion = cargo.match(/^rust-version\s*=\s*"([^"]+)"/m)[1];
const version = (text) => text.split(".").map(Number);
const notOlder = (a, b) => {
  const [x, y] = [version(a), version(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  }
  return true;
};
const dockerRust = dockerfile.match(/^ARG RUST_VERSION=(\S+)/m)?.[1];
if (!dockerRust) fail("Dockerfile: no `ARG RUST_VERSION=`");
else if (!notOlder(dockerRust, rustVersion)) fail(`Dockerfile builds on Rust ${dockerRust}, older than Cargo.toml's rust-version ${rustVersion}`);

const builds = instructions.filter((line) => /^RUN\s.*\bcargo build\b/.test(line));
if (!builds.some((line) => /cargo build --release --locked\s*$/.test(line))) {
  fail("Dockerfile: no RUN ends with `cargo build --release --locked` (the build whose lock file CI checks)");
}
for (const line of builds) {
  if (!/cargo build --release --locked/.test(line)) fail(`Dockerfile: a cargo build without --release --locked: ${line}`);
}
if (!dockerfile.includes(`/target/release/${packageName} `)) fail(`Dockerfile: does not copy target/release/${packageName} (Cargo.toml's package name)`);
if (!new RegExp(`^CMD \\["${packageName}"\\]`, "m").test(dockerfile)) fail(`Dockerfile: CMD does not run ${packageName}`);

const ignored = read(".dockerignore")
  .split("\n")
  .map((line) => line.trim().replace(/^\/|\/$/g, ""))
  .filter((line) => line && !line.startsWith("#"));
for (const line of instructions.filter((line) => /^COPY\s/.test(line) && !/--from=/.test(line))) {
  const sources = line.split(/\s+/).slice(1, -1).filter((part) => !part.startsWith("--"));
  for (const source of sources) {
    if (!existsSync(source)) fail(`Dockerfile copies ${source}, which does not exist`);
    const top = source.split("/")[0];
    if (ignored.includes(top) || ignored.includes(source)) fail(`Dockerfile copies ${source}, which .dockerignore excludes`);
  }
}
// Folders the build embeds with include_str!/include_bytes! (paths relative to a file in src/).
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(`${dir}/${entry.name}`) : [`${dir}/${entry.name}`],
  );
const embedded = new Set();
for (const file of walk("src").filter((file) => file.endsWith(".rs"))) {
  for (const [, path] of read(file).matchAll(/include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)/g)) {
    const resolved = posix.normalize(posix.join(posix.dirname(file), path));
    if (!resolved.startsWith("..")) embedded.add(resolved.split("/")[0]);
  }
}
for (const folder of new Set(["src", "templates", "migrations", "static", ...embedded])) {
  if (existsSync(folder) && !instructions.some((line) => new RegExp(`^COPY\\s+${folder}\\s`).test(line))) {
    fail(`Dockerfile does not copy ${folder}/ (the build or the running app reads it)`);
  }
}
// build.rs lists the migrations for the binary: without it the build fails.
if (existsSync("build.rs") && !instructions.some((line) => /^COPY\s+build\.rs\s/.test(line))) {
  fail("Dockerfile does not copy build.rs (it lists the migrations compiled into the binary)");
}
const exposed = dockerfile.match(/^EXPOSE\s+(\d+)/m)?.[1];
if (exposed !== dockerEnv.PORT) fail(`Dockerfile: EXPOSE ${exposed} but ENV PORT=${dockerEnv.PORT}`);
for (const [, body, file] of codeBlocks) {
  const internal = body.match(/internal_port\s*=\s*(\d+)/)?.[1];
  const port = body.match(/^\s*PORT\s*=\s*"(\d+)"/m)?.[1];
  if (internal && port && internal !== port) fail(`${file}: internal_port ${internal} but PORT ${port}`);
}

// ---- health-check paths are routes ----------------------------------------------------------
const routes = new Set([...read("src/lib.rs").matchAll(/\.route\(\s*"([^"]+)"/g)].map((match) => match[1]));
const healthPaths = [];
for (const [, path] of dockerfile.matchAll(/HEALTHCHECK[^\n]*\["http-check",\s*"([^"]+)"\]/g)) healthPaths.push([path, "Dockerfile HEALTHCHECK"]);
for (const [, path] of compose.matchAll(/"http-check",\s*"([^"]+)"/g)) healthPaths.push([path, "compose.yaml"]);
for (const [, path] of render.matchAll(/healthCheckPath:\s*(\S+)/g)) healthPaths.push([path, "docs/deploy/render.yaml"]);
for (const [, body, file] of codeBlocks) {
  for (const [, path] of body.matchAll(/(?:^\s*path\s*=\s*"|httpGet\.path=)(\/[^",\s]*)/gm)) healthPaths.push([path, file]);
}
if (!healthPaths.some(([, where]) => where === "Dockerfile HEALTHCHECK")) fail("Dockerfile: no HEALTHCHECK running http-check");
for (const [path, where] of healthPaths) {
  if (routes.has(path)) continue;
  if (PENDING_ROUTES.has(path)) warnings.push(`${where} checks ${path}, not routed in src/lib.rs yet (the PostgreSQL work adds it)`);
  else fail(`${where} checks ${path}, which src/lib.rs does not route`);
}

// ---- report ---------------------------------------------------------------------------------
for (const warning of warnings) console.log(`warning: ${warning}`);
if (errors.length) {
  for (const error of errors) console.error(`error: ${error}`);
  process.exit(1);
}
const unique = new Set(setVariables.map(([name]) => name));
console.log(
  `deploy files: ${unique.size} variables, all documented; Dockerfile builds ${packageName} with Rust ${dockerRust} ` +
    `(rust-version ${rustVersion}); ${healthPaths.length} health-check paths`,
);
