// Browser test of the Countersign demo pages (issue 7).
//
// Starts `countersign server --demo` on a free loopback port, uses the
// `countersign device` CLI as the phone, drives the pages in headless Debian
// Chromium through playwright-core, saves screenshots in $ARTIFACTS and ends
// with "N passed, N failed". Run by `cargo xtask test` (xtask/src/browser.rs),
// which provides COUNTERSIGN_BIN, CHROMIUM, NODE_PATH and ARTIFACTS.

import { spawn, execFile } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: ${name} is not set (run this through \`cargo xtask test\`)`);
    process.exit(2);
  }
  return v;
}

const BIN = need("COUNTERSIGN_BIN");
const CHROMIUM = need("CHROMIUM");
const ARTIFACTS = need("ARTIFACTS");
const NODE_MODULES = need("NODE_PATH");
for (const [what, p] of [["countersign binary", BIN], ["chromium", CHROMIUM]]) {
  if (!existsSync(p)) {
    console.error(`FAIL: ${what} not found at ${p}`);
    process.exit(2);
  }
}
const { chromium } = require(path.join(NODE_MODULES, "playwright-core"));

const work = mkdtempSync(path.join(tmpdir(), "countersign-browser-"));
const HOME = path.join(work, "device");
const started = Date.now();
let server = null;
let browser = null;

function cleanup() {
  if (server && server.exitCode === null) server.kill("SIGTERM");
  try { rmSync(work, { recursive: true, force: true }); } catch (e) { /* best effort */ }
}
process.on("exit", cleanup);

// ---------------------------------------------------------------------------
// The phone: `countersign device --home … --key-file …`

function device(args, { input, json = true } = {}) {
  const argv = ["device", "--home", HOME, "--key-file", ...(json ? ["--json"] : []), ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(BIN, argv, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`countersign ${argv.slice(5).join(" ")} failed: ${stderr.trim() || err.message}`));
        return;
      }
      try {
        resolve(json ? JSON.parse(stdout) : stdout);
      } catch (e) {
        reject(new Error(`countersign ${args.join(" ")}: not JSON: ${stdout}`));
      }
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Waits (long-poll) until the phone has the request for `rp` whose text matches. */
async function phoneRequest(predicate = () => true) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const list = await device(["pending", "--wait", "10"]);
    const hit = list.find(predicate);
    if (hit) return hit;
  }
  throw new Error("the phone never received the request");
}

// ---------------------------------------------------------------------------
// The server

function startServer() {
  return new Promise((resolve, reject) => {
    const db = `sqlite://${path.join(work, "server.db")}`;
    server = spawn(BIN, ["server", "--demo", "--listen", "127.0.0.1:0", "--database-url", db], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${err}`)), 30_000);
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m && out.includes("API key")) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.stderr.on("data", (d) => { err += d; });
    server.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}): ${err}`));
    });
  });
}

// ---------------------------------------------------------------------------
// Tests

const results = [];
// `allowConsole`: console errors the test provokes on purpose (e.g. the 403 of
// a wrong number the page sends); any other console error fails the test.
async function test(name, fn, { allowConsole } = {}) {
  const t0 = Date.now();
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  try {
    await fn(page);
    const unexpected = consoleErrors.filter((m) => !(allowConsole && allowConsole.test(m)));
    if (unexpected.length) throw new Error(`browser console errors: ${unexpected.join(" | ")}`);
    results.push({ name, ok: true });
    console.log(`ok   - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL - ${name}: ${e.message}`);
    try { await page.screenshot({ path: path.join(ARTIFACTS, `FAILED-${name}.png`), fullPage: true }); } catch (_) { /* ignore */ }
  } finally {
    await context.close();
  }
}

function shot(page, name) {
  return page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function enroll(page, base, user) {
  await page.goto(`${base}/demo/enroll`);
  await page.fill("#user", user);
  await page.click("#enroll");
  await page.waitForSelector("#offer:not([hidden])");
  const svg = await page.locator("#qr svg").count();
  if (svg !== 1) throw new Error("no QR code on the enrollment page");
  const code = (await page.textContent("#code")).trim();
  if (!/^[0-9A-Z]{5}(-[0-9A-Z]{5})+$/.test(code)) throw new Error(`odd typed code ${code}`);
  // The activation link holds the offer's secret: only in the QR, never as text.
  if ((await page.textContent("#offer")).includes("secret=")) throw new Error("the activation link is shown as text");
  return await page.getAttribute("#qr", "data-uri");
}

async function signIn(page, base, user, timeout) {
  await page.goto(`${base}/demo/login${timeout ? `?timeout=${timeout}` : ""}`);
  await page.fill("#user", user);
  await page.fill("#password", "demo");
  await page.click("#login");
  await page.waitForSelector("#approve:not([hidden])");
  const number = (await page.textContent("#number")).trim();
  if (!/^[0-9]{2,8}$/.test(number)) throw new Error(`no number on the page: "${number}"`);
  return number;
}

async function stateIs(page, state, timeout = 20_000) {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout });
}

async function main() {
  const base = await startServer();
  console.log(`server ${base}, device home ${HOME}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

  await test("enroll page shows QR and code; the phone activates", async (page) => {
    const uri = await enroll(page, base, "alice");
    await shot(page, "01-enroll");
    const acct = await device(["activate", uri]);
    if (acct.label !== "alice" || acct.kind !== "push") throw new Error(`activated ${JSON.stringify(acct)}`);
    // bob protects approvals with a PIN (typed twice on stdin).
    const uri2 = await enroll(page, base, "bob");
    await device(["activate", uri2, "--pin"], { input: "246810\n246810\n" });
    // carol and dave meet the attacker's rules (denials, wrong numbers, "not me").
    for (const user of ["carol", "dave"]) await device(["activate", await enroll(page, base, user)]);
  });

  await test("log in and approve: page shows signed in", async (page) => {
    const number = await signIn(page, base, "alice");
    await shot(page, "02-approve-on-phone");
    const req = await phoneRequest((r) => r.account === "alice");
    if (req.number_matching.mode !== "type") throw new Error("no number matching");
    await device(["approve", req.tx_id, "--number", number]);
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 20_000 });
    const text = await page.textContent("#signed-in");
    if (!text.includes("Signed in") || !text.includes("alice")) throw new Error(`page says ${text}`);
    await shot(page, "03-signed-in");
  });

  await test("deny on the phone: page shows denied", async (page) => {
    await signIn(page, base, "carol");
    const req = await phoneRequest((r) => r.account === "carol");
    await device(["deny", req.tx_id]);
    await stateIs(page, "denied");
    const text = await page.textContent("#status");
    if (!/denied/i.test(text)) throw new Error(`status says ${text}`);
    if (await page.isVisible("#resend")) throw new Error("Resend offered after a denial");
    await shot(page, "04-denied");
  });

  await test("a wrong number typed on the phone ends the login page with denied", async (page) => {
    const number = await signIn(page, base, "carol");
    const req = await phoneRequest((r) => r.account === "carol");
    // The user cannot see the attacker's page and guesses: three wrong numbers
    // end the request (it was once 98 tries).
    for (let k = 1; k <= 3; k++) {
      const guess = String((Number(number) + k) % 100).padStart(number.length, "0");
      let refused = false;
      try { await device(["approve", req.tx_id, "--number", guess]); } catch (e) { refused = true; }
      if (!refused) throw new Error(`the wrong number ${guess} was approved`);
    }
    await stateIs(page, "denied");
    const text = await page.textContent("#status");
    if (!/wrong number/i.test(text)) throw new Error(`status says ${text}`);
    // The right number no longer signs in.
    let late = false;
    try { await device(["approve", req.tx_id, "--number", number]); } catch (e) { late = true; }
    if (!late) throw new Error("the right number was accepted after the request ended");
    await shot(page, "05-wrong-number-denied");
  });

  await test("\"not me\" on the phone: denied, and the next sign-in gets no push", async (page) => {
    await signIn(page, base, "dave");
    const req = await phoneRequest((r) => r.account === "dave");
    await device(["deny", req.tx_id, "--not-me"]);
    await stateIs(page, "denied");
    const text = await page.textContent("#status");
    if (!/not you/i.test(text)) throw new Error(`status says ${text}`);
    // The attacker tries again: no push, the page says why.
    await page.goto(`${base}/demo/login`);
    await page.fill("#user", "dave");
    await page.fill("#password", "demo");
    await page.click("#login");
    await stateIs(page, "suppressed");
    const again = await page.textContent("#status");
    if (!/locked/i.test(again)) throw new Error(`second sign-in says ${again}`);
    if (await page.isVisible("#resend")) throw new Error("Resend offered while pushes are locked");
    const pending = await device(["pending"]);
    if (pending.some((r) => r.account === "dave")) throw new Error("a push reached the phone while locked");
    await shot(page, "06-not-me-locked");
  });

  await test("let it time out, then resend works", async (page) => {
    await signIn(page, base, "alice", 3);
    await stateIs(page, "expired", 15_000);
    await shot(page, "07-expired");
    await page.click("#resend");
    await stateIs(page, "pending");
    const number = (await page.textContent("#number")).trim();
    const req = await phoneRequest((r) => r.account === "alice");
    await device(["approve", req.tx_id, "--number", number]);
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 20_000 });
  });

  await test("a TOTP typed into the page works", async (page) => {
    await signIn(page, base, "bob");
    await page.click("#use-code");
    const [otp] = await device(["otp", "bob"]);
    await page.fill("#code", otp.code);
    await page.click("#submit-code");
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 10_000 });
    const method = await page.textContent("#method");
    if (method !== "totp") throw new Error(`signed in by ${method}`);
    await shot(page, "08-totp-signed-in");

    // Same session: a transfer shows amount and payee, the phone asks for the PIN.
    await page.goto(`${base}/demo/transfer`);
    await page.fill("#amount", "1250.00");
    await page.fill("#payee", "ACME Supplies Ltd");
    await page.click("#send");
    await page.waitForSelector("#approve:not([hidden])");
    const number = (await page.textContent("#number")).trim();
    const shown = await page.textContent("#approve");
    if (!shown.includes("1250.00 EUR") || !shown.includes("ACME Supplies Ltd")) throw new Error(`page shows ${shown}`);
    const req = await phoneRequest((r) => r.account === "bob" && r.transaction);
    if (req.transaction.payee !== "ACME Supplies Ltd" || req.verification !== "pin") {
      throw new Error(`phone shows ${JSON.stringify(req)}`);
    }
    await shot(page, "09-transfer-confirm");
    const ans = await device(["approve", req.tx_id, "--number", number], { input: "246810\n" });
    if (ans.verification !== "pin") throw new Error(`approved with ${ans.verification}`);
    await stateIs(page, "approved");
    if (await page.isVisible("#resend")) throw new Error("Resend still visible after the transfer was signed");
    await shot(page, "10-transfer-signed");
  });

  await test("offline QR: the OCRA response typed into the page works", async (page) => {
    await signIn(page, base, "bob");
    await page.click("#use-code");
    await page.click("#offline");
    await page.waitForSelector("#offline-box:not([hidden])");
    if ((await page.locator("#offline-qr svg").count()) !== 1) throw new Error("no offline QR");
    const payload = await page.getAttribute("#offline-qr", "data-payload");
    const answer = await device(["offline", payload]);
    if (!/^[0-9]{8}$/.test(answer.code)) throw new Error("no 8-digit OCRA response");
    await shot(page, "11-offline-qr");
    await page.fill("#ocra", answer.code);
    await page.click("#submit-ocra");
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 10_000 });
    const method = await page.textContent("#method");
    if (!method.includes("OCRA")) throw new Error(`signed in by ${method}`);
  });

  // Sign in with QR (issue 14): the page shows a QR login; the CLI, as the
  // phone, scans its payload and answers. No push service is involved.
  async function showQr(page, { reverse = false, timeout } = {}) {
    await page.goto(`${base}/demo/qr${timeout ? `?timeout=${timeout}` : ""}`);
    if (reverse) await page.check("#reverse");
    await page.click("#qr-start");
    await page.waitForSelector("#qr-panel:not([hidden])");
    if ((await page.locator("#qr-code svg").count()) !== 1) throw new Error("no QR code on the page");
    const uri = await page.getAttribute("#qr-link", "href");
    if (!uri.startsWith("countersign://login?")) throw new Error(`odd QR payload ${uri}`);
    return uri;
  }

  await test("sign in with QR: the phone scans the page's code and approves", async (page) => {
    const uri = await showQr(page);
    await shot(page, "12-qr-login");
    const ans = await device(["scan", uri, "--account", "alice", "--approve"]);
    if (ans.decision !== "approve" || ans.queued) throw new Error(`answer ${JSON.stringify(ans)}`);
    // The phone was shown where the browser is.
    if (ans.request.location !== "Demo web page" || !/Chrome/.test(ans.request.user_agent || "")) {
      throw new Error(`phone showed ${JSON.stringify(ans.request)}`);
    }
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 20_000 });
    const text = await page.textContent("#signed-in");
    if (!text.includes("alice") || !/QR/.test(text)) throw new Error(`page says ${text}`);
    await shot(page, "13-qr-signed-in");
  });

  await test("sign in with QR: deny on the phone shows denied", async (page) => {
    const uri = await showQr(page);
    await device(["scan", uri, "--account", "carol", "--deny"]);
    await stateIs(page, "denied");
    const text = await page.textContent("#status");
    if (!/denied/i.test(text)) throw new Error(`status says ${text}`);
    if (await page.isVisible("#signed-in")) throw new Error("signed in after a denial");
  });

  await test("sign in with QR: an expired code shows expired and the phone cannot use it", async (page) => {
    const uri = await showQr(page, { timeout: 10 });
    await stateIs(page, "expired", 20_000);
    const text = await page.textContent("#status");
    if (!/expired/i.test(text)) throw new Error(`status says ${text}`);
    await shot(page, "14-qr-expired");
    let refused = null;
    try { await device(["scan", uri, "--account", "alice", "--approve"]); } catch (e) { refused = e.message; }
    if (!refused || !/expired/i.test(refused)) throw new Error(`late scan: ${refused}`);
  });

  await test("sign in with QR: polling with a wrong browser handle learns nothing", async (page) => {
    const uri = await showQr(page);
    const id = new URL(uri.replace("countersign://", "https://x/")).searchParams.get("id");
    // The browser context's own HTTP client, with another page's handle.
    const probe = async (loginId, handle) => {
      const r = await page.request.get(`${base}/v1/logins/${loginId}?wait=0`, { headers: { authorization: `Bearer ${handle}` } });
      return { status: r.status(), body: await r.text() };
    };
    const wrong = await probe(id, "AAAAAAAAAAAAAAAAAAAAAA");
    const unknown = await probe("AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA");
    if (wrong.status !== 404 || wrong.status !== unknown.status || wrong.body !== unknown.body) {
      throw new Error(`wrong handle: ${JSON.stringify(wrong)}, unknown login: ${JSON.stringify(unknown)}`);
    }
    // The real page is unaffected and still signs in.
    await device(["scan", uri, "--account", "alice", "--approve"]);
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 20_000 });
  });

  await test("sign in with QR and reverse number: type the phone's number on the page", async (page) => {
    const uri = await showQr(page, { reverse: true });
    const ans = await device(["scan", uri, "--account", "alice", "--approve"]);
    const shown = ans.request.number_matching;
    if (shown.mode !== "show" || !/^[0-9]{6}$/.test(shown.number)) throw new Error(`phone showed ${JSON.stringify(shown)}`);
    await page.waitForSelector("#qr-number-form:not([hidden])", { timeout: 20_000 });
    if (await page.isVisible("#signed-in")) throw new Error("signed in before the number was typed");
    const wrong = shown.number === "000000" ? "111111" : "000000";
    await page.fill("#qr-number", wrong);
    await page.click("#qr-number-submit");
    await page.waitForSelector("#qr-number-error:not([hidden])");
    await page.fill("#qr-number", shown.number);
    await page.click("#qr-number-submit");
    await page.waitForSelector("#signed-in:not([hidden])", { timeout: 20_000 });
    await shot(page, "15-qr-reverse-number");
  }, { allowConsole: /status of 403/ });

  await test("every page fits a phone-width screen (no sideways scrolling) and has brand, help and footer", async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const name of ["", "enroll", "login", "qr", "transfer"]) {
      await page.goto(`${base}/demo/${name}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 0) throw new Error(`/demo/${name} is ${overflow} px wider than the phone`);
      // Every page has the brand, a line of help under its title, and a footer.
      for (const selector of [".brand .logo", "h1 + p.help", "footer"]) {
        if (!(await page.isVisible(selector))) throw new Error(`/demo/${name} has no visible ${selector}`);
      }
      await shot(page, `16-phone-${name || "index"}`);
    }
  });

  await browser.close();
  browser = null;
}

main()
  .catch((e) => {
    results.push({ name: "setup", ok: false });
    console.log(`FAIL - setup: ${e.message}`);
  })
  .finally(async () => {
    if (browser) await browser.close().catch(() => {});
    const passed = results.filter((r) => r.ok).length;
    const failed = results.length - passed;
    console.log(`browser test: ${((Date.now() - started) / 1000).toFixed(1)} s, screenshots in ${ARTIFACTS}`);
    console.log(`${passed} passed, ${failed} failed`);
    cleanup();
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  });
