#!/usr/bin/env node
// Loads a page in Debian's headless Chromium (driven by playwright-core, which downloads
// no browser), waits for a chart to be drawn, and prints one JSON object saying what the
// page showed; saves a screenshot. Used by the e2e tests (tests/e2e/test_frontend.py).
//
//   node render.mjs URL --screenshot out.png [options]
//
//   --screenshot PATH   PNG of the whole page, taken at the end (also after a failure)
//   --wait-for SEL      what "drawn" means (default: svg[data-state="ready"] [data-series])
//   --fail-on SEL       stop waiting early when this appears (default: [data-state="error"])
//   --click SEL         after the chart is drawn, click SEL and wait for it again; repeatable
//   --timeout MS        deadline for the whole run, browser start included (default 30000)
//   --chromium PATH     the browser (default $CHROMIUM, else /usr/bin/chromium)
//
// Exit status: 0 when --wait-for appeared (after each click too), 1 when it did not (the
// deadline passed, or --fail-on appeared: "outcome" says which), 2 when the browser
// could not be used at all. The JSON is printed in every case but 2's usage errors:
//   {"outcome": "drawn"|"failed"|"timeout", "url", "final_url", "http_status", "title",
//    "chart": {"state", "series": [{"name", "points"}], "series_count", "legend",
//              "axis_labels", "x_ticks", "y_ticks", "status_text", "caption"},
//    "after_clicks": [{"click", "outcome", "chart"}], "console_errors", "page_errors",
//    "failed_requests", "http_errors", "screenshot", "elapsed_ms", "error"?}

import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

// Without the background-networking flags Chromium keeps dialling Google's hosts, which
// a machine without internet refuses, many at a time.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function usage(message) {
  process.stderr.write(`render.mjs: ${message}\nusage: node render.mjs URL --screenshot PATH [--wait-for SEL] [--fail-on SEL] [--click SEL]... [--timeout MS] [--chromium PATH]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    url: '',
    screenshot: '',
    waitFor: 'svg[data-state="ready"] [data-series]',
    failOn: '[data-state="error"]',
    clicks: [],
    timeout: 30000,
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--screenshot') opts.screenshot = path.resolve(value());
    else if (arg === '--wait-for') opts.waitFor = value();
    else if (arg === '--fail-on') opts.failOn = value();
    else if (arg === '--click') opts.clicks.push(value());
    else if (arg === '--timeout') opts.timeout = Number(value());
    else if (arg === '--chromium') opts.chromium = value();
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else if (!opts.url) opts.url = arg;
    else usage(`unexpected argument ${arg}`);
  }
  if (!opts.url) usage('no URL given');
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('--timeout must be a number of milliseconds');
  return opts;
}

// Runs in the page: what the chart shows. Series are the <path>/<polyline> elements with
// a data-series attribute; their point count is data-points, else counted from the shape.
function readChart() {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((e) => e.textContent.trim());
  const svg = document.querySelector('svg[data-state]') || document.querySelector('svg');
  const lines = [...document.querySelectorAll('path[data-series], polyline[data-series]')];
  const series = lines.map((line) => {
    let points = Number(line.getAttribute('data-points'));
    if (!Number.isFinite(points) || line.getAttribute('data-points') === null) {
      points =
        line.tagName === 'polyline'
          ? (line.getAttribute('points') || '').trim().split(/\s+/).filter(Boolean).length
          : ((line.getAttribute('d') || '').match(/[ML]/gi) || []).length;
    }
    return { name: line.getAttribute('data-series'), points };
  });
  return {
    state: svg ? svg.getAttribute('data-state') : null,
    series,
    series_count: series.length,
    legend: texts('.legend [data-series], .legend-item').filter(Boolean),
    axis_labels: texts('.axis-label'),
    x_ticks: texts('.axis.x .tick'),
    y_ticks: texts('.axis.y .tick'),
    status_text: texts('[role="status"]').join(' '),
    caption: texts('figcaption').join(' '),
  };
}

// `promise`, or `fallback` once `ms` pass: for the calls made after a failure, when the
// page may still be loading and would keep an evaluate or a screenshot waiting.
function within(ms, promise, fallback = null) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const deadline = started + opts.timeout;
  const left = () => Math.max(1, deadline - Date.now());
  if (!existsSync(opts.chromium)) {
    usage(`no browser at ${opts.chromium}: install Debian's chromium (scripts/setup.sh does), or pass --chromium`);
  }

  const report = {
    outcome: 'timeout',
    url: opts.url,
    final_url: null,
    http_status: null,
    title: null,
    chart: null,
    after_clicks: [],
    console_errors: [],
    page_errors: [],
    failed_requests: [],
    http_errors: [],
    screenshot: opts.screenshot || null,
    elapsed_ms: 0,
  };

  // Past the deadline by a margin, whatever hangs (the browser's start, a stuck
  // screenshot), the process ends: a test must fail, not wait for ctest's timeout.
  let printed = false;
  const print = () => {
    printed = true;
    report.elapsed_ms = Date.now() - started;
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  };
  const hardStop = setTimeout(() => {
    if (printed) process.exit(process.exitCode ?? 1); // only closing the browser hung
    report.outcome = 'timeout';
    report.error = `render.mjs: still running ${opts.timeout + 10000} ms after start; gave up`;
    print();
    process.exit(1);
  }, opts.timeout + 10000);
  hardStop.unref();

  const profile = mkdtempSync(path.join(tmpdir(), 'render-chromium-'));
  let context;
  try {
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: opts.chromium,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1100, height: 800 },
        timeout: left(),
      });
    } catch (e) {
      process.stderr.write(`render.mjs: could not start ${opts.chromium}: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (msg) => {
      if (msg.type() === 'error') report.console_errors.push(msg.text());
    });
    page.on('pageerror', (error) => report.page_errors.push(String(error.message || error)));
    page.on('requestfailed', (request) =>
      report.failed_requests.push({ url: request.url(), error: request.failure()?.errorText || 'failed' }),
    );
    page.on('response', (response) => {
      if (response.status() >= 400) report.http_errors.push({ url: response.url(), status: response.status() });
    });

    // Waits for --wait-for or --fail-on, whichever shows first; returns the outcome.
    const settle = async () => {
      try {
        const found = await page.waitForSelector(`${opts.waitFor}, ${opts.failOn}`, { timeout: left(), state: 'attached' });
        return (await found.evaluate((e, sel) => e.matches(sel), opts.failOn)) ? 'failed' : 'drawn';
      } catch (e) {
        if (e.name === 'TimeoutError') return 'timeout';
        throw e;
      }
    };

    try {
      const response = await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: left() });
      report.http_status = response ? response.status() : null;
      report.outcome = await settle();
      report.chart = await page.evaluate(readChart);
      for (const selector of opts.clicks) {
        if (report.outcome !== 'drawn') break;
        const step = { click: selector };
        await page.click(selector, { timeout: left() });
        step.outcome = await settle();
        step.chart = await page.evaluate(readChart);
        report.after_clicks.push(step);
        if (step.outcome !== 'drawn') report.outcome = step.outcome;
      }
    } catch (e) {
      report.outcome = e.name === 'TimeoutError' ? 'timeout' : 'failed';
      report.error = e.message.split('\n')[0];
      // The page may be gone or still loading: what can be read in a moment is reported.
      report.chart = await within(2000, page.evaluate(readChart), report.chart);
    }
    report.final_url = page.url();
    report.title = await within(2000, page.title());
    if (opts.screenshot) {
      const taken = await within(
        8000,
        page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 }).then(() => true),
        false,
      );
      if (!taken) report.screenshot = null;
    }
    process.exitCode = report.outcome === 'drawn' ? 0 : 1;
    print();
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    clearTimeout(hardStop);
  }
}

main().catch((e) => {
  process.stderr.write(`render.mjs: ${e.stack || e}\n`);
  process.exit(2);
});
