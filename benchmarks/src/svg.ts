// A small line-chart writer for the scaling runs: one SVG string, no dependency. Axes are
// logarithmic in x (sizes grow 10× per step) and linear in y from zero, so a flat line reads as
// "cost independent of size" and a bend is visible at a glance.

/** One line of a chart: `points` are `[x, y]`, x > 0. */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

/** One panel: a title, axis labels and its lines. */
export interface Chart {
  readonly title: string;
  readonly x: string;
  readonly y: string;
  readonly series: readonly Series[];
}

const W = 460;
const H = 300;
const M = { left: 64, right: 16, top: 34, bottom: 70 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const short = (n: number) =>
  n >= 1e6
    ? `${+(n / 1e6).toPrecision(3)}M`
    : n >= 1e3
      ? `${+(n / 1e3).toPrecision(3)}k`
      : `${+n.toPrecision(3)}`;

/** One chart panel as an SVG `<g>` translated to `(ox, oy)`. */
function panel(chart: Chart, ox: number, oy: number): string {
  const points = chart.series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && isFinite(y));
  const out: string[] = [`<g transform="translate(${ox},${oy})">`];
  out.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(chart.title)}</text>`,
  );
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  if (points.length > 0) {
    const lx = points.map(([x]) => Math.log10(x));
    const [x0, x1] = [Math.min(...lx), Math.max(...lx)];
    const span = x1 - x0 || 1;
    const yMax = Math.max(...points.map(([, y]) => y)) * 1.1 || 1;
    const px = (x: number) => M.left + ((Math.log10(x) - x0) / span) * pw;
    const py = (y: number) => M.top + ph - (y / yMax) * ph;
    for (const x of [...new Set(points.map(([x]) => x))]) {
      out.push(
        `<line x1="${px(x)}" x2="${px(x)}" y1="${M.top + ph}" y2="${M.top + ph + 4}" stroke="#999"/>`,
        `<text x="${px(x)}" y="${M.top + ph + 16}" text-anchor="middle">${short(x)}</text>`,
      );
    }
    for (let i = 0; i <= 4; i++) {
      const y = (yMax * i) / 4;
      out.push(
        `<line x1="${M.left}" x2="${M.left + pw}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`,
        `<text x="${M.left - 4}" y="${py(y) + 4}" text-anchor="end">${short(y)}</text>`,
      );
    }
    chart.series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length]!;
      const line = s.points
        .filter(([x, y]) => x > 0 && isFinite(y))
        .map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${line.join(" ")}"/>`,
        ...line.map((p) => {
          const [cx, cy] = p.split(",");
          return `<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`;
        }),
        `<text x="${M.left + (i % 2) * (pw / 2)}" y="${H - 18 + Math.floor(i / 2) * 14}" fill="${color}">— ${esc(s.name)}</text>`,
      );
    });
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${M.top + ph + 32}" text-anchor="middle">${esc(chart.x)} (log scale)</text>`,
    `<text transform="translate(14,${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(chart.y)}</text>`,
    "</g>",
  );
  return out.join("\n");
}

/** Charts side by side, two per row, as one standalone SVG document. */
export function lineCharts(charts: readonly Chart[], caption: string): string {
  const cols = Math.min(2, charts.length) || 1;
  const rows = Math.ceil(charts.length / cols);
  const width = cols * W;
  const height = rows * H + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...charts.map((c, i) => panel(c, (i % cols) * W, Math.floor(i / cols) * H)),
    `<text x="8" y="${height - 8}" fill="#555">${esc(caption)}</text>`,
    "</svg>",
    "",
  ].join("\n");
}
