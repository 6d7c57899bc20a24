// Open the Microsoft 365 Agents Playground page in headless Chromium, as a person would:
// wait for the bot's welcome card, screenshot it, type `help`, wait for the help card, screenshot it.
// Usage: node playground_page.mjs <playground-url> <artifacts-dir> <welcome-title> <help-title>
// Prints one JSON object on stdout: what the page showed, and every request it was refused.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [url, artifacts, welcomeTitle, helpTitle] = process.argv.slice(2);
const UNSUPPORTED = /is not supported yet in Microsoft 365 Agents playground/i;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const timings = {};
const blocked = [];
const consoleErrors = [];
const started = Date.now();
const mark = (name) => { timings[name] = Date.now() - started; };

mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(path.join(tmpdir(), 'playground-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { ok: false };
try {
  await context.route('**/*', (route) => {
    const target = new URL(route.request().url());
    if (['http:', 'https:', 'ws:', 'wss:'].includes(target.protocol) && !LOOPBACK.has(target.hostname)) {
      blocked.push(target.origin);
      return route.abort();
    }
    return route.continue();
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text().slice(0, 300)); });
  mark('browser');
  await page.goto(url, { waitUntil: 'domcontentloaded' });

  const cards = page.locator('.fai-OutputCard .ac-adaptiveCard');
  const welcome = cards.filter({ hasText: welcomeTitle }).first();
  await welcome.waitFor({ state: 'visible', timeout: 20000 });
  await page.waitForTimeout(300);   // let the card finish laying out
  mark('welcome');
  await welcome.screenshot({ path: path.join(artifacts, 'welcome-card.png') });
  await page.screenshot({ path: path.join(artifacts, 'welcome-page.png') });
  result.welcome = await welcome.innerText();
  result.welcomeButtons = await welcome.locator('button').allInnerTexts();

  const box = page.locator('[data-lexical-editor="true"][role="textbox"]');
  await box.click();
  await box.type('help');
  await page.locator('button[aria-label="Send Message"]').click();
  const help = cards.filter({ hasText: helpTitle }).last();
  await help.waitFor({ state: 'visible', timeout: 15000 });
  await page.waitForTimeout(300);
  mark('help');
  await help.scrollIntoViewIfNeeded();
  await help.screenshot({ path: path.join(artifacts, 'help-card.png') });
  await page.screenshot({ path: path.join(artifacts, 'help-page.png') });
  result.help = await help.innerText();
  result.helpButtons = await help.locator('button').allInnerTexts();

  const body = await page.locator('body').innerText();
  result.unsupported = body.split('\n').filter((line) => UNSUPPORTED.test(line));
  result.conversations = await page.locator('[role=treeitem]').allInnerTexts();
  result.ok = true;
} catch (error) {
  result.error = String(error && error.stack || error);
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: path.join(artifacts, 'failure.png') });
  } catch { /* nothing more to save */ }
} finally {
  result.blocked = [...new Set(blocked)];
  result.consoleErrors = consoleErrors;
  result.timings = timings;
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.ok ? 0 : 1);
