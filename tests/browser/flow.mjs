// The dashboard walked through by its three kinds of users in headless chromium (Debian's),
// driven by playwright-core. Run by tests/browser.rs, which starts sevloop and passes:
// SEVLOOP_URL, SEVLOOP_CHROMIUM, SUPPORT_TOKEN, TEAM_TOKEN, LEADERSHIP_TOKEN, BURST_FILE (a JSON
// array of tickets) and SCREENSHOTS (a directory). Exits non-zero on the first failed check.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is set`);
  return value;
};
const url = env("SEVLOOP_URL");
const shots = env("SCREENSHOTS");

const browser = await chromium.launch({
  executablePath: env("SEVLOOP_CHROMIUM"),
  args: ["--no-sandbox"],
});

/** A logged-in page of its own (cookies are per context). */
async function logIn(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  console.log(`screenshot ${name}.png of ${page.url()}`);
}

/** Reloads `path` until `check(page)` holds, for up to `seconds`. */
async function until(page, path, what, check, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(`${url}${path}`);
    if (await check(page)) return;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what} on ${path}`);
    await page.waitForTimeout(500);
  }
}

/** The text of the first element `selector` finds, trimmed ("" when there is none). */
async function textOf(page, selector) {
  const el = page.locator(selector).first();
  return (await el.count()) ? (await el.innerText()).trim() : "";
}
const testText = (page, id) => textOf(page, `[data-testid="${id}"]`);

try {
  // Leadership, before: the triage team has no acknowledged SEV yet.
  const leadership = await logIn(env("LEADERSHIP_TOKEN"));
  await leadership.goto(`${url}/leadership`);
  const mttaBefore = await testText(leadership, "mtta-triage");
  const pareto = (p) => p.locator('[data-testid="pareto"]').first().innerHTML();
  const paretoBefore = await pareto(leadership);
  await shot(leadership, "leadership-before");

  // Support files the burst through the API, then finds the SEV on a ticket's page.
  const burst = JSON.parse(readFileSync(env("BURST_FILE"), "utf8"));
  const filed = await fetch(`${url}/api/v1/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${env("SUPPORT_TOKEN")}`, "content-type": "application/json" },
    body: JSON.stringify(burst),
  });
  assert.equal(filed.status, 202, `the burst is accepted: ${await filed.text()}`);
  const support = await logIn(env("SUPPORT_TOKEN"));
  const last = burst[burst.length - 1].ticket_id;
  const sevLink = (p) => p.locator('section[aria-labelledby="sev"] a[href^="/sevs/"]');
  await until(support, `/tickets/${last}`, "the ticket's SEV", async (p) => (await sevLink(p).count()) > 0);
  const sevId = (await sevLink(support).first().innerText()).trim();
  assert.match(sevId, /^SEV-\d+$/, "the ticket page links its SEV");
  await shot(support, "ticket");
  await support.goto(`${url}/`);
  assert.ok(await support.getByText(sevId).count(), "the SEV list shows the new SEV");
  await shot(support, "sevs");
  await support.goto(`${url}/clusters`);
  await shot(support, "clusters");
  await support.goto(`${url}/search?q=${encodeURIComponent("card declined")}`);
  assert.ok(await support.locator(`a[href="/tickets/${last}"]`).count(), "search finds the burst");
  await shot(support, "search");
  // Support may read the SEV but not act on it.
  await support.goto(`${url}/sevs/${sevId}`);
  assert.equal(await support.locator("button[name=action]").count(), 0, "support has no actions");

  // The owning team acknowledges, then resolves, on the SEV page.
  const team = await logIn(env("TEAM_TOKEN"));
  await team.goto(`${url}/sevs/${sevId}`);
  assert.equal(await testText(team, "sev-state"), "open");
  await shot(team, "sev-open");
  await team.click("button[name=action][value=acknowledge]");
  await until(team, `/sevs/${sevId}`, "the acknowledgement", async (p) =>
    (await testText(p, "sev-state")) === "acknowledged",
  );
  await shot(team, "sev-acknowledged");
  await team.click("button[name=action][value=resolve]");
  await until(team, `/sevs/${sevId}`, "the resolution", async (p) =>
    (await testText(p, "sev-state")) === "resolved",
  );
  assert.ok(await team.getByText("team:triage").count(), "the timeline names the team's role");
  await shot(team, "sev-resolved");

  // Leadership, after: an MTTA for triage, and the burst's cluster in the Pareto chart.
  await until(leadership, "/leadership", "MTTA to change", async (p) => {
    const mtta = await testText(p, "mtta-triage");
    return mtta !== "" && mtta !== mttaBefore && mtta !== "—";
  });
  assert.ok((await leadership.locator('[data-testid="pareto"] rect').count()) > 0, "the Pareto chart has bars");
  assert.notEqual(await pareto(leadership), paretoBefore, "the burst's cluster changed the Pareto chart");
  assert.equal(await leadership.getByText(burst[0].body).count(), 0, "leadership sees no ticket text");
  await shot(leadership, "leadership-after");
  console.log(`ok: ${sevId} seen by support, resolved by triage, MTTA ${mttaBefore || "none"} -> ${await testText(leadership, "mtta-triage")}`);
} finally {
  await browser.close();
}
