// Line charts as plain SVG: `layoutChart` turns the API's series into geometry (pure,
// tested with node --test), `renderChart` turns that geometry into SVG elements.
//
// What a test can rely on in the drawn <svg class="chart">:
//   <path class="series" data-series="60M" data-points="20">  one per model size
//   <g class="legend"> <g class="legend-item" data-series="60M"><text>60M</text>
//   <g class="axis x"> / <g class="axis y">, each <text class="tick"> and <text class="axis-label">

// Okabe–Ito: distinguishable with the common kinds of colour blindness.
export const COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000'];

const SVG_NS = 'http://www.w3.org/2000/svg';

export const METRIC_LABELS = { loss: 'Loss', accuracy: 'Accuracy' };

// Round tick values covering [min, max]: steps of 1, 2 or 5 times a power of ten, about
// `count` of them. A flat range (min == max) is widened so that it still has ticks.
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { min: 0, max: 1, step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] };
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) ticks.push(roundTo(lo + i * step, step));
  return { min: lo, max: hi, step, ticks };
}

function roundTo(value, step) {
  const decimals = decimalsFor(step);
  return Number(value.toFixed(decimals));
}

// The decimals a tick step has: 0 for 2500, 1 for 0.5, 2 for 0.25.
function decimalsFor(step) {
  for (let d = 0; d < 10; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
  }
  return 10;
}

// "10,000" for steps, "2.5" / "0.05" for values: as many decimals as the tick step needs.
export function formatTick(value, step) {
  const decimals = decimalsFor(step);
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

// Geometry of one chart. `series` is the API's [{name, points: [{step, value}]}].
// `colorOrder` lists every name that may be charted (all the model sizes), so that a
// size keeps its colour when others are hidden; without it colours go by position.
export function layoutChart(series, { width = 760, height = 420, metric = 'loss', colorOrder = [] } = {}) {
  const margin = { top: 20, right: 120, bottom: 56, left: 72 };
  const plot = {
    left: margin.left,
    top: margin.top,
    right: width - margin.right,
    bottom: height - margin.bottom,
  };
  const points = series.flatMap((s) => s.points);
  const steps = points.map((p) => p.step);
  const values = points.map((p) => p.value);
  // Steps start at the origin: a curve's first point shows how far training had gone.
  const x = niceTicks(0, steps.length ? Math.max(...steps) : 1, 5);
  const y = niceTicks(values.length ? Math.min(...values) : 0, values.length ? Math.max(...values) : 1, 5);
  const sx = (step) => plot.left + ((step - x.min) / (x.max - x.min)) * (plot.right - plot.left);
  const sy = (value) => plot.bottom - ((value - y.min) / (y.max - y.min)) * (plot.bottom - plot.top);

  const lines = series.map((s, i) => {
    const xy = s.points.map((p) => [sx(p.step), sy(p.value)]);
    return {
      name: s.name,
      color: COLORS[(colorOrder.includes(s.name) ? colorOrder.indexOf(s.name) : i) % COLORS.length],
      points: s.points.map((p, j) => ({ ...p, x: xy[j][0], y: xy[j][1] })),
      d: xy.map(([px, py], j) => `${j ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join(''),
    };
  });
  return {
    width,
    height,
    plot,
    metric,
    xTicks: x.ticks.map((v) => ({ value: v, label: formatTick(v, x.step), pos: sx(v) })),
    yTicks: y.ticks.map((v) => ({ value: v, label: formatTick(v, y.step), pos: sy(v) })),
    xLabel: 'Training step',
    yLabel: METRIC_LABELS[metric] || metric,
    lines,
  };
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Replaces the contents of `svg` with the chart of `layout`.
export function renderChart(svg, layout, { title } = {}) {
  const { width, height, plot } = layout;
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  if (title) svg.append(el('title', {}, title));

  const grid = el('g', { class: 'grid' });
  for (const t of layout.yTicks) {
    grid.append(el('line', { x1: plot.left, x2: plot.right, y1: t.pos, y2: t.pos }));
  }
  svg.append(grid);

  const xAxis = el('g', { class: 'axis x' });
  xAxis.append(el('line', { class: 'domain', x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom }));
  for (const t of layout.xTicks) {
    xAxis.append(el('line', { x1: t.pos, x2: t.pos, y1: plot.bottom, y2: plot.bottom + 6 }));
    xAxis.append(el('text', { class: 'tick', x: t.pos, y: plot.bottom + 20, 'text-anchor': 'middle' }, t.label));
  }
  xAxis.append(
    el('text', { class: 'axis-label', x: (plot.left + plot.right) / 2, y: height - 12, 'text-anchor': 'middle' }, layout.xLabel),
  );
  svg.append(xAxis);

  const yAxis = el('g', { class: 'axis y' });
  yAxis.append(el('line', { class: 'domain', x1: plot.left, x2: plot.left, y1: plot.top, y2: plot.bottom }));
  for (const t of layout.yTicks) {
    yAxis.append(el('line', { x1: plot.left - 6, x2: plot.left, y1: t.pos, y2: t.pos }));
    yAxis.append(
      el('text', { class: 'tick', x: plot.left - 10, y: t.pos, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, t.label),
    );
  }
  const cy = (plot.top + plot.bottom) / 2;
  yAxis.append(
    el('text', { class: 'axis-label', x: 18, y: cy, 'text-anchor': 'middle', transform: `rotate(-90 18 ${cy})` }, layout.yLabel),
  );
  svg.append(yAxis);

  const series = el('g', { class: 'lines' });
  for (const line of layout.lines) {
    const path = el('path', {
      class: 'series',
      d: line.d,
      stroke: line.color,
      fill: 'none',
      'data-series': line.name,
      'data-points': line.points.length,
    });
    path.append(el('title', {}, line.name));
    series.append(path);
    const dots = el('g', { class: 'dots', 'data-series': line.name, fill: line.color });
    for (const p of line.points) {
      const dot = el('circle', { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 2.5 });
      dot.append(el('title', {}, `${line.name} · step ${p.step.toLocaleString('en-US')} · ${layout.yLabel.toLowerCase()} ${p.value}`));
      dots.append(dot);
    }
    series.append(dots);
  }
  svg.append(series);

  const legend = el('g', { class: 'legend', transform: `translate(${plot.right + 16} ${plot.top})` });
  layout.lines.forEach((line, i) => {
    const item = el('g', { class: 'legend-item', 'data-series': line.name, transform: `translate(0 ${i * 22})` });
    item.append(el('line', { x1: 0, x2: 22, y1: 8, y2: 8, stroke: line.color, 'stroke-width': 3 }));
    item.append(el('text', { x: 30, y: 8, 'dominant-baseline': 'middle' }, line.name));
    legend.append(item);
  });
  svg.append(legend);
}
