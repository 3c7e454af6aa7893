// Unit tests of the chart's geometry: `npm test` (node's own test runner, no packages).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTick, layoutChart, niceTicks } from '../src/chart.js';

test('niceTicks covers the range with round steps', () => {
  assert.deepEqual(niceTicks(0, 10000, 5), { min: 0, max: 10000, step: 2000, ticks: [0, 2000, 4000, 6000, 8000, 10000] });
  const y = niceTicks(2.31, 4.45, 5);
  assert.equal(y.step, 0.5);
  assert.deepEqual(y.ticks, [2, 2.5, 3, 3.5, 4, 4.5]);
  const acc = niceTicks(0.0276, 0.4712, 5);
  assert.equal(acc.step, 0.1);
  assert.deepEqual(acc.ticks, [0, 0.1, 0.2, 0.3, 0.4, 0.5]);
});

test('niceTicks widens a flat range and tolerates reversed bounds', () => {
  const flat = niceTicks(3, 3, 5);
  assert.ok(flat.min < 3 && flat.max > 3, JSON.stringify(flat));
  assert.deepEqual(niceTicks(10, 0, 5).ticks, niceTicks(0, 10, 5).ticks);
});

test('formatTick shows as many decimals as the step has', () => {
  assert.equal(formatTick(10000, 2000), '10,000');
  assert.equal(formatTick(2.5, 0.5), '2.5');
  assert.equal(formatTick(3, 0.5), '3.0');
  assert.equal(formatTick(0.25, 0.25), '0.25');
  assert.equal(formatTick(0.2, 0.1), '0.2');
});

test('layoutChart gives one line per series, every point inside the plot', () => {
  const series = [
    { name: '60M', points: [{ step: 500, value: 4.45 }, { step: 1000, value: 4.1 }, { step: 10000, value: 3.2 }] },
    { name: '1B', points: [{ step: 500, value: 4.0 }, { step: 10000, value: 2.3 }] },
  ];
  const layout = layoutChart(series, { metric: 'loss', width: 760, height: 420 });
  assert.deepEqual(layout.lines.map((l) => l.name), ['60M', '1B']);
  assert.deepEqual(layout.lines.map((l) => l.points.length), [3, 2]);
  assert.equal(layout.yLabel, 'Loss');
  assert.equal(layout.xLabel, 'Training step');
  assert.notEqual(layout.lines[0].color, layout.lines[1].color);
  for (const line of layout.lines) {
    assert.match(line.d, /^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+$/);
    for (const p of line.points) {
      assert.ok(p.x >= layout.plot.left && p.x <= layout.plot.right, `x ${p.x}`);
      assert.ok(p.y >= layout.plot.top && p.y <= layout.plot.bottom, `y ${p.y}`);
    }
  }
  // A falling loss is drawn going down the plot: SVG's y grows downwards.
  assert.ok(layout.lines[1].points[1].y > layout.lines[1].points[0].y);
  assert.equal(layout.xTicks[0].label, '0');
  assert.equal(layout.xTicks.at(-1).label, '10,000');
});

test('a model size keeps its colour when others are hidden', () => {
  const one = (name) => ({ name, points: [{ step: 500, value: 1 }, { step: 1000, value: 2 }] });
  const order = ['60M', '150M', '350M', '1B'];
  const all = layoutChart(order.map(one), { colorOrder: order });
  const some = layoutChart([one('350M'), one('1B')], { colorOrder: order });
  assert.deepEqual(some.lines.map((l) => l.color), all.lines.slice(2).map((l) => l.color));
});
