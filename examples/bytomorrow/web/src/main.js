import './style.css';
import { ApiError, fetchOptions, fetchSeries } from './api.js';
import { METRIC_LABELS, layoutChart, renderChart } from './chart.js';

// The chart's <svg> says where it is in data-state: loading, ready, empty (no model size
// picked, or none on file) or error (the API could not be read; #status says why).
const svg = document.getElementById('chart');
const caption = document.getElementById('caption');
const status = document.getElementById('status');
const sourceSelect = document.getElementById('data-source');
const metricBox = document.getElementById('metric');
const paramsBox = document.getElementById('params');

// The selection is kept in the page's query string (?data_source=c4&metric=accuracy&params=60M,1B),
// so a chart can be linked to and survives a reload.
const state = { dataSource: '', metric: '', params: [] };
let allSizes = []; // every model size on file, smallest first: the colours' order
let inFlight = null; // the AbortController of the data request being waited for

function setState(kind, message = '') {
  svg.dataset.state = kind;
  status.textContent = message;
  status.className = kind === 'error' ? 'error' : '';
}

function fail(error) {
  if (error.name === 'AbortError') return;
  console.error(error.message);
  svg.replaceChildren();
  caption.textContent = 'No chart';
  setState('error', error instanceof ApiError ? error.message : `Error: ${error.message}`);
}

function pick(wanted, available, fallback) {
  return available.includes(wanted) ? wanted : available.includes(fallback) ? fallback : available[0];
}

function buildControls(options) {
  const query = new URLSearchParams(location.search);
  state.dataSource = pick(query.get('data_source'), options.data_sources, 'pile');
  state.metric = pick(query.get('metric'), options.metrics, 'loss');
  const askedSizes = (query.get('params') || '').split(',').filter((p) => options.params.includes(p));
  state.params = askedSizes.length ? askedSizes : [...options.params];
  allSizes = options.params;

  sourceSelect.replaceChildren(...options.data_sources.map((s) => new Option(s, s, false, s === state.dataSource)));
  sourceSelect.disabled = false;
  sourceSelect.addEventListener('change', () => {
    state.dataSource = sourceSelect.value;
    update();
  });

  metricBox.replaceChildren(
    ...options.metrics.map((m) => choice('radio', 'metric', m, METRIC_LABELS[m] || m, m === state.metric)),
  );
  metricBox.addEventListener('change', (e) => {
    state.metric = e.target.value;
    update();
  });

  paramsBox.replaceChildren(...options.params.map((p) => choice('checkbox', 'params', p, p, state.params.includes(p))));
  paramsBox.addEventListener('change', () => {
    // In the API's order (smallest model first), whatever order they were clicked in.
    state.params = [...paramsBox.querySelectorAll('input:checked')].map((input) => input.value);
    update();
  });
}

function choice(type, name, value, label, checked) {
  const wrapper = document.createElement('label');
  const input = document.createElement('input');
  Object.assign(input, { type, name, value, checked });
  wrapper.append(input, ` ${label}`);
  return wrapper;
}

async function update() {
  const query = new URLSearchParams({ data_source: state.dataSource, metric: state.metric, params: state.params.join(',') });
  history.replaceState(null, '', `${location.pathname}?${String(query).replaceAll('%2C', ',')}`);
  inFlight?.abort();
  if (state.params.length === 0) {
    svg.replaceChildren();
    caption.textContent = 'No model size selected';
    setState('empty', 'Pick at least one model size.');
    return;
  }
  const request = new AbortController();
  inFlight = request;
  setState('loading', 'Loading…');
  try {
    const data = await fetchSeries(state, request.signal);
    if (request.signal.aborted) return;
    draw(data);
  } catch (e) {
    if (!request.signal.aborted) fail(e);
  }
}

function draw(data) {
  const label = METRIC_LABELS[data.metric] || data.metric;
  if (data.series.length === 0) {
    svg.replaceChildren();
    caption.textContent = `No ${label.toLowerCase()} on file for ${data.data_source}`;
    setState('empty', 'No results for this selection.');
    return;
  }
  const layout = layoutChart(data.series, { metric: data.metric, colorOrder: allSizes });
  const steps = data.series.flatMap((s) => s.points.map((p) => p.step));
  const title = `${label} by training step on ${data.data_source}, one line per model size`;
  renderChart(svg, layout, { title });
  caption.textContent =
    `${label} on ${data.data_source} · ${data.series.map((s) => s.name).join(', ')} · ` +
    `steps ${Math.min(...steps).toLocaleString('en-US')}–${Math.max(...steps).toLocaleString('en-US')}`;
  setState('ready');
}

async function start() {
  try {
    buildControls(await fetchOptions());
  } catch (e) {
    fail(e);
    return;
  }
  await update();
}

start();
