import { escapeJsonText } from "@switchyard/event-schema";
import {
  type CausationNode,
  type DeadLetterInfo,
  type DeliveryInfo,
  type DeliveryStep,
  type DeliveryStepKind,
  type EventPage,
  type StoredEvent,
  type SubscriberBacklog,
  type TopologyIssue,
  type TypeEndpoint,
  BREAKING_TOPOLOGY_ISSUES,
  TOPOLOGY_ISSUE_TEXT,
  deliveryStepText,
} from "@switchyard/transport";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type {
  ContractsView,
  DaemonView,
  DeadLetterGroups,
  EventDetail,
  Overview,
  SubscriberSort,
} from "./data";
import { WINDOWS } from "./data";
import type { PipelineGraph, PipelineKeys, PipelineKeysView } from "./pipeline";

// Every value below goes through hono's `html` template, which escapes it: payloads, ids, types
// and error messages are hostile input. Nothing here uses `raw`. Escaping does not stop a value's
// bidi controls (U+202E RIGHT-TO-LEFT OVERRIDE…) from reordering the text after it, so every
// untrusted text is shown through `short` (or `full`), which isolates it, and every payload
// through `pretty`, which writes them as JSON escapes.

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What every page needs to know about where it is served. */
export interface PageContext {
  readonly base: string;
  readonly title: string;
  readonly transport: string;
  readonly actions: boolean;
}

const PAGES = [
  ["overview", "Overview", "/"],
  ["pipeline", "Pipeline", "/pipeline"],
  ["subscribers", "Subscribers", "/subscribers"],
  ["events", "Events", "/events"],
  ["dead-letters", "Dead letters", "/dead-letters"],
  ["daemons", "Daemons", "/daemons"],
  ["contracts", "Contracts", "/contracts"],
] as const;

type PageName = (typeof PAGES)[number][0];

const link = (ctx: PageContext, path: string) => `${ctx.base}${path}` || "/";

/** At most `max` characters, with an ellipsis: table cells stay readable with hostile lengths. */
function clip(text: unknown, max: number): string {
  const s =
    typeof text === "string" ? text : text == null ? "" : (JSON.stringify(text) ?? typeof text);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A bidi control, or a letter written right to left (Hebrew, Arabic, Syriac, Thaana, N'Ko…). */
const DIRECTIONAL =
  /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]|[\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;
const FSI = "\u2068";
const PDI = "\u2069";

/**
 * `text` as a bidi isolate (FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE, the plain-text
 * `<bdi>`, usable in attributes, titles and SVG too) when it holds anything that sets a direction:
 * its controls and right-to-left letters then order only the text itself, not what follows it.
 * Its own unmatched isolates are matched (one more FSI per stray PDI, one more PDI per open
 * initiator), so it cannot close the isolate early. Text without any is unchanged (copied as is).
 */
export function isolate(text: string): string {
  if (!DIRECTIONAL.test(text)) return text;
  let open = 0;
  let stray = 0;
  for (const ch of text)
    if (ch === "\u2066" || ch === "\u2067" || ch === FSI) open++;
    else if (ch === PDI) {
      if (open > 0) open--;
      else stray++;
    }
  return `${FSI.repeat(stray + 1)}${text}${PDI.repeat(open + stray + 1)}`;
}

/**
 * An untrusted value as shown text: at most `max` characters, with an ellipsis (table cells stay
 * readable with hostile lengths), isolated (its direction cannot leak into what follows it).
 */
export function short(text: unknown, max = 120): string {
  return isolate(clip(text, max));
}

/** An untrusted value as shown text, whole (isolated like {@link short}). */
const full = (text: unknown) => short(text, Infinity);

const PAYLOAD_MAX = 200_000;

/** The JSON of a value, indented; never throws (cycles and depth beyond the stack are reported). */
export function pretty(value: unknown): string {
  let text: string;
  try {
    // Bidi controls written as the JSON escapes they equal: shown, instead of reordering the
    // lines' text (a value's U+202E would turn the rest of its line around).
    text = escapeJsonText(JSON.stringify(value, null, 2) ?? "undefined");
  } catch (error) {
    return `(cannot be shown: ${short((error as Error).message, 300)})`;
  }
  return text.length > PAYLOAD_MAX
    ? `${text.slice(0, PAYLOAD_MAX)}\n… (${text.length - PAYLOAD_MAX} more characters: see the JSON API)`
    : text;
}

const ago = (ms: number | undefined) =>
  ms === undefined
    ? "—"
    : ms < 1000
      ? `${Math.round(ms)} ms`
      : ms < 120_000
        ? `${Math.round(ms / 1000)} s`
        : ms < 7_200_000
          ? `${Math.round(ms / 60_000)} min`
          : ms < 172_800_000
            ? `${Math.round(ms / 3_600_000)} h`
            : `${Math.round(ms / 86_400_000)} d`;

const time = (iso: string | undefined | null) =>
  iso
    ? html`<time datetime="${iso}">${iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "Z")}</time>`
    : "—";

/** A time to the millisecond: the steps of one delivery often share a second. */
const preciseTime = (iso: string) =>
  html`<time datetime="${iso}">${iso.replace("T", " ").replace(/Z$/, "")}Z</time>`;

const badge = (status: string) => html`<span class="badge badge-${status}">${status}</span>`;

/** The page shell: header, navigation, main; one script and two style sheets from the package. */
export function layout(
  ctx: PageContext,
  page: PageName | "event" | "dead-letter",
  heading: string,
  body: Html,
): Html {
  const active = page === "event" ? "events" : page === "dead-letter" ? "dead-letters" : page;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${heading} · ${ctx.title}</title>
        <link rel="icon" href="${ctx.base}/assets/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="${ctx.base}/assets/uplot.css" />
        <link rel="stylesheet" href="${ctx.base}/assets/dashboard.css" />
        <script type="module" src="${ctx.base}/assets/dashboard.js"></script>
      </head>
      <body
        data-base="${ctx.base}"
        data-actions="${ctx.actions ? "on" : "off"}"
        data-page="${page}"
      >
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <span class="brand">${ctx.title}</span>
          <nav aria-label="Pages">
            <ul>
              ${PAGES.map(
                ([name, label, path]) =>
                  html`<li>
                    <a
                      href="${link(ctx, path)}"
                      ${name === active ? html` aria-current="page"` : ""}
                      >${label}</a
                    >
                  </li>`,
              )}
            </ul>
          </nav>
          <span class="transport"
            >transport: ${ctx.transport}${ctx.actions ? "" : " · read-only"}</span
          >
        </header>
        <main id="main">
          <h1>${heading}</h1>
          ${body}
        </main>
      </body>
    </html>`;
}

/** An error page body (the message is escaped like everything else). */
export function errorBody(message: string): Html {
  return html`<p class="error" role="alert">${message}</p>`;
}

const number = (n: number) => html`<td class="num">${n}</td>`;

function subscriberRows(list: readonly SubscriberBacklog[], ctx: PageContext): Html[] {
  return list.map(
    (s) =>
      html`<tr>
        <td>
          <a href="${link(ctx, `/events?type=${encodeURIComponent(s.types.join(","))}`)}"
            >${short(s.subscriber)}</a
          >${s.ephemeral ? html` <span class="muted">(ephemeral)</span>` : ""}${s.damaged ? html` <span class="badge badge-degraded" title="${full(s.damaged)}">damaged</span>` : ""}
        </td>
        <td>${short(s.types.join(", "), 160)}</td>
        ${number(s.lag)}${number(s.pending)}${number(s.inFlight)}${number(s.retrying)}${number(s.dead)}
        <td class="num">${ago(s.oldestPendingMs)}</td>
        <td>${time(s.lastSeen)}</td>
      </tr>`,
  );
}

const SUB_COLUMNS: readonly [SubscriberSort | undefined, string][] = [
  ["subscriber", "Subscriber"],
  [undefined, "Types"],
  ["lag", "Lag"],
  ["pending", "Pending"],
  ["inFlight", "In flight"],
  ["retrying", "Retrying"],
  ["dead", "Dead"],
  ["oldestPendingMs", "Oldest pending"],
  ["lastSeen", "Last seen"],
];

function subscriberTable(
  ctx: PageContext,
  list: readonly SubscriberBacklog[],
  sort?: { sort: SubscriberSort; dir: "asc" | "desc" },
): Html {
  const head = SUB_COLUMNS.map(([key, label]) => {
    if (!key || !sort) return html`<th scope="col">${label}</th>`;
    const activeCol = sort.sort === key;
    const nextDir = activeCol && sort.dir === "desc" ? "asc" : "desc";
    const aria = activeCol ? (sort.dir === "asc" ? "ascending" : "descending") : "none";
    return html`<th scope="col" aria-sort="${aria}">
      <a href="${link(ctx, `/subscribers?sort=${key}&dir=${nextDir}`)}"
        >${label}${activeCol ? (sort.dir === "asc" ? " ▲" : " ▼") : ""}</a
      >
    </th>`;
  });
  return list.length === 0
    ? html`<p class="muted">No subscribers registered.</p>`
    : html`<table class="data" id="subscribers-table">
        <thead>
          <tr>
            ${head}
          </tr>
        </thead>
        <tbody>
          ${subscriberRows(list, ctx)}
        </tbody>
      </table>`;
}

/** Overview: checks, backlog, dead letters, daemons, throughput. */
export function overviewPage(ctx: PageContext, o: Overview): Html {
  const dl = o.deadLetters;
  const windows = Object.keys(WINDOWS);
  return layout(
    ctx,
    "overview",
    "Overview",
    html` <section aria-labelledby="health-h" class="panel">
        <h2 id="health-h">Health ${badge(o.health.status)}</h2>
        <table class="data" id="checks">
          <thead>
            <tr>
              <th scope="col">Check</th>
              <th scope="col">Status</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            ${o.health.checks.map(
              (c) =>
                html`<tr>
                  <td>${short(c.check)}</td>
                  <td>${badge(c.status)}</td>
                  <td>${short(c.message, 400)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </section>
      <section class="cards" aria-label="Totals">
        <div class="card">
          <h2>Backlog</h2>
          <p class="big" id="backlog-lag">${o.backlog.lag}</p>
          <p>
            ${o.backlog.pending} pending · ${o.backlog.inFlight} in flight · ${o.backlog.retrying}
            retrying · ${o.backlog.subscribers} subscribers
          </p>
        </div>
        <div class="card">
          <h2>Dead letters</h2>
          <p class="big" id="dead-letter-depth">${dl ? dl.depth : "—"}</p>
          <p>
            ${dl ? html`<a href="${link(ctx, "/dead-letters")}">to handle</a>${dl.oldestAgeMs !== undefined ? html` · oldest ${ago(dl.oldestAgeMs)}` : ""}` : "not stored by this transport"}
          </p>
        </div>
        <div class="card">
          <h2>Daemons</h2>
          <p class="big" id="daemons-up">
            ${o.daemons.up}<span class="muted">/${o.daemons.total}</span>
          </p>
          <p>
            ${o.daemons.up} up · ${o.daemons.stale} stale · ${o.daemons.stopped} stopped ·
            ${o.daemons.failed} failed
          </p>
        </div>
      </section>
      <section aria-labelledby="throughput-h" class="panel">
        <h2 id="throughput-h">
          Events stored per ${Math.round(o.throughput.bucketMs / 1000)} s, last
          ${o.throughput.window}
        </h2>
        <nav aria-label="Window" class="windows">
          ${windows.map((w) => html`<a href="${link(ctx, `/?window=${w}`)}" ${w === o.throughput.window ? html` aria-current="true"` : ""}>${w}</a>`)}
        </nav>
        <div
          id="throughput-chart"
          class="chart"
          data-src="${ctx.base}/api/counts?window=${o.throughput.window}"
          role="img"
          aria-label="Events stored per type over the last ${o.throughput.window}"
        ></div>
        <table class="data" id="throughput-totals">
          <thead>
            <tr>
              <th scope="col">Event type</th>
              <th scope="col">Events</th>
            </tr>
          </thead>
          <tbody>
            ${Object.entries(o.throughput.totals)
              .sort((a, b) => b[1] - a[1])
              .map(
                ([type, n]) =>
                  html`<tr>
                    <td>
                      <a href="${link(ctx, `/events?type=${encodeURIComponent(type)}`)}"
                        >${short(type)}</a
                      >
                    </td>
                    ${number(n)}
                  </tr>`,
              )}
          </tbody>
        </table>
      </section>
      <section aria-labelledby="subs-h" class="panel">
        <h2 id="subs-h">Subscribers by backlog</h2>
        ${subscriberTable(ctx, o.subscribers.slice(0, 10))}
      </section>
      ${
        Object.keys(o.errors).length > 0
          ? errorBody(
              `Some reads failed: ${Object.entries(o.errors)
                .map(([k, v]) => `${k}: ${v}`)
                .join("; ")}`,
            )
          : ""
      }`,
  );
}

/** Subscribers, sortable by every numeric column. */
export function subscribersPage(
  ctx: PageContext,
  data: { sort: SubscriberSort; dir: "asc" | "desc"; subscribers: readonly SubscriberBacklog[] },
): Html {
  return layout(ctx, "subscribers", "Subscribers", subscriberTable(ctx, data.subscribers, data));
}

function eventRow(ctx: PageContext, e: StoredEvent): Html {
  return html`<tr>
    <td class="num">${e.seq}</td>
    <td><a href="${link(ctx, `/events/${encodeURIComponent(e.id)}`)}">${short(e.id, 40)}</a></td>
    <td>${short(e.type)}</td>
    <td>${short(e.subject ?? "—")}</td>
    <td>${short(e.source)}</td>
    <td>${time(e.storedAt)}</td>
  </tr>`;
}

/** Events: filters, a page, the next-page link and the live tail. */
export function eventsPage(ctx: PageContext, params: URLSearchParams, page: EventPage): Html {
  const v = (name: string) => params.get(name) ?? "";
  const next = new URLSearchParams(params);
  if (page.next) next.set("cursor", page.next);
  const stream = new URLSearchParams();
  for (const key of ["type", "subject"]) if (params.get(key)) stream.set(key, params.get(key)!);
  return layout(
    ctx,
    "events",
    "Events",
    html` <form class="filters" method="get" action="${link(ctx, "/events")}" role="search">
        <label
          >Type
          <input name="type" value="${v("type")}" placeholder="MODEL_PROMOTED,TRAINING_COMPLETED"
        /></label>
        <label
          >Subject (key) <input name="subject" value="${v("subject")}" placeholder="hex8_2p"
        /></label>
        <label
          >Since <input name="since" value="${v("since")}" placeholder="2026-01-31T12:00:00Z"
        /></label>
        <label>Until <input name="until" value="${v("until")}" /></label>
        <label
          >Per page
          <input name="limit" type="number" min="1" max="500" value="${v("limit") || "50"}"
        /></label>
        <button type="submit">Filter</button>
      </form>
      <p class="tail">
        <button
          type="button"
          id="tail-toggle"
          aria-pressed="false"
          data-src="${ctx.base}/api/events/stream?${stream.toString()}"
        >
          Start live tail
        </button>
        <span id="tail-status" role="status" aria-live="polite"></span>
      </p>
      <table class="data" id="events-table">
        <thead>
          <tr>
            <th scope="col">Seq</th>
            <th scope="col">Id</th>
            <th scope="col">Type</th>
            <th scope="col">Subject</th>
            <th scope="col">Source</th>
            <th scope="col">Stored</th>
          </tr>
        </thead>
        <tbody id="events-body">
          ${page.events.map((e) => eventRow(ctx, e))}
        </tbody>
      </table>
      ${page.events.length === 0 ? html`<p class="muted">No events match.</p>` : ""}
      ${page.next ? html`<p><a id="next-page" href="${link(ctx, `/events?${next.toString()}`)}">Next page →</a></p>` : ""}`,
  );
}

function causationTree(ctx: PageContext, node: CausationNode, current: string): Html {
  const e = node.event;
  return html`<li>
    ${e.id === current ? html`<strong>${short(e.type)} ${short(e.id, 40)}</strong> (this event)` : html`<a href="${link(ctx, `/events/${encodeURIComponent(e.id)}`)}">${short(e.type)} ${short(e.id, 40)}</a>`}${
      node.caused.length > 0
        ? html`<ul>
            ${node.caused.map((c) => causationTree(ctx, c, current))}
          </ul>`
        : ""
    }
  </li>`;
}

/** The causes, oldest first, each holding the next, the last holding the event's own tree. */
function causeChain(ctx: PageContext, causes: readonly StoredEvent[], inner: Html): Html {
  return causes.reduceRight<Html>(
    (acc, x) =>
      html`<li>
        <a href="${link(ctx, `/events/${encodeURIComponent(x.id)}`)}"
          >${short(x.type)} ${short(x.id, 40)}</a
        >
        <ul>
          ${acc}
        </ul>
      </li>`,
    inner,
  );
}

const STEP_BADGE: Readonly<Record<DeliveryStepKind, string>> = {
  claimed: "in_flight",
  acked: "acked",
  retry_scheduled: "retrying",
  lease_expired: "retrying",
  fenced: "dead",
  dead_lettered: "dead",
  replayed: "replayed",
  requeued: "pending",
};

/** A delay in words: `250 ms`, `3.5 s`, `2 min`. */
const delay = (ms: number | undefined) =>
  ms === undefined
    ? "—"
    : ms < 1000
      ? `${Math.round(ms)} ms`
      : ms < 120_000
        ? `${Math.round(ms / 100) / 10} s`
        : ago(ms);

/** One delivery's timeline: every step the transport kept, oldest first. */
function timeline(d: DeliveryInfo, history: readonly DeliveryStep[]): Html {
  return html`${
      d.historyTruncated
        ? html`<p class="muted">Older steps were dropped by the transport's bound.</p>`
        : ""
    }
    <table class="data timeline" data-subscriber="${d.subscriber}">
      <caption class="visually-hidden">
        Delivery timeline of ${short(d.subscriber)}
      </caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Step</th>
          <th scope="col">Attempt</th>
          <th scope="col">Delay</th>
          <th scope="col">Reason</th>
          <th scope="col">Error</th>
          <th scope="col">By</th>
        </tr>
      </thead>
      <tbody>
        ${history.map(
          (step) =>
            html`<tr data-kind="${step.kind}">
              <td>${preciseTime(step.at)}</td>
              <td>
                <span class="badge badge-${STEP_BADGE[step.kind] ?? "pending"}"
                  >${deliveryStepText[step.kind] ?? short(step.kind, 40)}</span
                >
              </td>
              <td class="num">${step.attempt ?? "—"}</td>
              <td class="num">${delay(step.delayMs)}</td>
              <td>${full(step.reason ?? "—")}</td>
              <td>
                ${step.error ? html`<code>${short(step.error.name, 80)}</code>: ${firstLine(step.error.message)}` : "—"}
              </td>
              <td>
                ${step.by ? short(step.by, 80) : "—"}${step.detail ? html` <span class="muted">${short(step.detail, 300)}</span>` : ""}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

/** The first line of an error message, at most 300 characters. */
const firstLine = (message: unknown) => short(clip(message, 100_000).split("\n", 1)[0], 300);

function deliveryItem(
  ctx: PageContext,
  d: DeliveryInfo,
  dead: readonly DeadLetterInfo[],
  historyKept: boolean,
): Html {
  const steps: Html[] = [];
  if (d.attempts > 0)
    steps.push(html`<li>${d.attempts} attempt${d.attempts === 1 ? "" : "s"} started</li>`);
  if (d.leaseUntil) steps.push(html`<li>in flight, lease until ${time(d.leaseUntil)}</li>`);
  if (d.availableAt) steps.push(html`<li>retry not before ${time(d.availableAt)}</li>`);
  if (d.lastError)
    steps.push(
      html`<li>
        last error <code>${short(d.lastError.name, 80)}</code>: ${short(d.lastError.message, 500)}
      </li>`,
    );
  if (d.deadReason) steps.push(html`<li>dead-lettered: ${full(d.deadReason)}</li>`);
  for (const x of dead.filter((r) => r.subscriber === d.subscriber))
    steps.push(
      html`<li>
        dead-lettered (${full(x.reason)}, ${x.attempts} attempt${x.attempts === 1 ? "" : "s"}) first
        ${time(x.firstFailedAt)}, last
        ${time(x.lastFailedAt)}${x.replays > 0 ? html`; replayed ${x.replays} time${x.replays === 1 ? "" : "s"}, last ${time(x.replayedAt)}` : ""};
        now ${badge(x.status)}
        <a href="${link(ctx, `/dead-letters/${encodeURIComponent(x.id)}`)}"
          >dead letter ${short(x.id, 40)}</a
        >
      </li>`,
    );
  if (d.damaged)
    steps.push(html`<li class="error">stored state damaged: ${short(d.damaged, 300)}</li>`);
  const history = historyKept ? d.history : undefined;
  return html`<li class="delivery">
    <h3>
      ${short(d.subscriber)}
      ${badge(d.state)}${d.updatedAt ? html` <span class="muted">updated ${time(d.updatedAt)}</span>` : ""}
    </h3>
    ${
      steps.length > 0
        ? html`<ol class="summary">
            ${steps}
          </ol>`
        : html`<p class="muted">not attempted yet</p>`
    }
    ${
      history === undefined
        ? ""
        : history.length === 0
          ? html`<p class="muted">No step recorded yet.</p>`
          : timeline(d, history)
    }
  </li>`;
}

/** One event: attributes, payload, causation, deliveries. */
export function eventPage(ctx: PageContext, d: EventDetail): Html {
  const e = d.event;
  const c = d.causation;
  return layout(
    ctx,
    "event",
    `Event ${short(e.type, 80)}`,
    html` <dl class="facts">
        <dt>Id</dt>
        <dd><code>${full(e.id)}</code></dd>
        <dt>Type</dt>
        <dd>${full(e.type)}</dd>
        <dt>Subject</dt>
        <dd>${full(e.subject ?? "—")}</dd>
        <dt>Source</dt>
        <dd>${full(e.source)}</dd>
        <dt>Time</dt>
        <dd>${time(e.time)}</dd>
        <dt>Stored</dt>
        <dd>${time(e.storedAt)} (seq ${e.seq})</dd>
        ${
          e.causedBy
            ? html`<dt>Caused by</dt>
                <dd>
                  <a href="${link(ctx, `/events/${encodeURIComponent(e.causedBy)}`)}"
                    >${full(e.causedBy)}</a
                  >
                </dd>`
            : ""
        }
        ${
          e.damaged
            ? html`<dt>Damaged</dt>
                <dd class="error">${full(e.damaged)}</dd>`
            : ""
        }
      </dl>
      <section aria-labelledby="deliveries-h" class="panel">
        <h2 id="deliveries-h">Deliveries</h2>
        ${
          d.deliveries.length === 0
            ? html`<p class="muted">
                No subscriber is registered for this type (or the transport cannot tell).
              </p>`
            : html`<ul class="deliveries" id="deliveries">
                ${d.deliveries.map((x) => deliveryItem(ctx, x, d.deadLetters, d.history))}
              </ul>`
        }
        ${
          d.history
            ? ""
            : html`<p class="muted" id="no-history">
                The ${ctx.transport} transport keeps no delivery history: the attempts and the last
                error are all it can tell.
              </p>`
        }
        ${
          d.deadLetters.length > 0
            ? html`<p>
                <a
                  id="event-dead-letters"
                  href="${link(ctx, `/dead-letters?eventId=${encodeURIComponent(e.id)}&status=all`)}"
                  >Dead letters of this event (${d.deadLetters.length})</a
                >
              </p>`
            : ""
        }
      </section>
      <section aria-labelledby="causation-h" class="panel">
        <h2 id="causation-h">Causation</h2>
        ${
          c
            ? html`${c.causes.length === 0 ? html`<p class="muted">A root event (nothing caused it).</p>` : ""}
                <ul class="tree" id="causation">
                  ${causeChain(ctx, c.causes, causationTree(ctx, c.root, e.id))}
                </ul>
                ${c.truncated ? html`<p class="muted">Cut at depth or size.</p>` : ""}`
            : html`<p class="muted">Unknown.</p>`
        }
      </section>
      <section aria-labelledby="payload-h" class="panel">
        <h2 id="payload-h">Envelope</h2>
        <pre class="payload" id="payload" tabindex="0">${pretty(e.envelope ?? null)}</pre>
        <p><a href="${ctx.base}/api/events/${encodeURIComponent(e.id)}">JSON</a></p>
      </section>`,
  );
}

const actionButtons = (ctx: PageContext, target: unknown, label: string) =>
  ctx.actions
    ? html`<button
          type="button"
          class="act"
          data-action="replay"
          data-target="${JSON.stringify(target)}"
        >
          Replay ${label}
        </button>
        <button
          type="button"
          class="act danger"
          data-action="purge"
          data-target="${JSON.stringify(target)}"
        >
          Purge ${label}
        </button>`
    : "";

function actionPanel(ctx: PageContext): Html {
  return ctx.actions
    ? html`<section class="panel actions" aria-labelledby="actions-h">
        <h2 id="actions-h">Actions</h2>
        <p>
          <label
            >Token
            <input
              type="password"
              id="token"
              autocomplete="off"
              placeholder="the dashboard's action token"
          /></label>
          Each action counts first (a dry run) and asks you to confirm.
        </p>
        <div id="confirm" hidden>
          <p id="confirm-text" role="status"></p>
          <button type="button" id="confirm-yes">Confirm</button>
          <button type="button" id="confirm-no">Cancel</button>
        </div>
        <p id="action-result" role="status" aria-live="polite"></p>
      </section>`
    : html`<p class="muted" id="read-only">
        Read-only: start the dashboard with <code>actions: { token }</code> to replay or purge.
      </p>`;
}

/** Dead letters grouped by signature, with replay and purge per group and per filter. */
export function deadLettersPage(
  ctx: PageContext,
  params: URLSearchParams,
  data: DeadLetterGroups,
  supported: boolean,
): Html {
  const v = (name: string) => params.get(name) ?? "";
  const filter: Record<string, string> = {};
  for (const key of ["eventId", "type", "subscriber", "reason", "status"])
    if (params.get(key)) filter[key] = params.get(key)!;
  const filtered = Boolean(filter.eventId || filter.type || filter.subscriber || filter.reason);
  return layout(
    ctx,
    "dead-letters",
    "Dead letters",
    html` ${supported ? "" : html`<p class="muted">This transport stores no dead letters.</p>`}
      <form class="filters" method="get" action="${link(ctx, "/dead-letters")}" role="search">
        <label>Event id <input name="eventId" value="${v("eventId")}" /></label>
        <label>Type <input name="type" value="${v("type")}" /></label>
        <label>Subscriber <input name="subscriber" value="${v("subscriber")}" /></label>
        <label
          >Reason
          <select name="reason">
            ${["", "max_attempts", "unrecoverable", "invalid_payload", "timeout"].map((r) => html`<option value="${r}" ${r === v("reason") ? html` selected` : ""}>${r || "any"}</option>`)}
          </select></label
        >
        <label
          >Status
          <select name="status">
            ${["attention", "all", "replayed", "purged"].map((s) => html`<option value="${s}" ${s === (v("status") || "attention") ? html` selected` : ""}>${s === "attention" ? "needs attention" : s}</option>`)}
          </select></label
        >
        <button type="submit">Filter</button>
      </form>
      ${actionPanel(ctx)}
      ${filtered ? html`<p>${actionButtons(ctx, { filter }, "all matching")}</p>` : ""}
      <p class="muted">
        ${data.scanned} dead letter${data.scanned === 1 ? "" : "s"} in ${data.groups.length}
        group${data.groups.length === 1 ? "" : "s"}${data.truncated ? " (the newest only: narrow the filter)" : ""}.
      </p>
      ${
        data.groups.length === 0
          ? html`<p class="muted" id="no-dead-letters">No dead letters match.</p>`
          : html`<table class="data" id="groups">
              <thead>
                <tr>
                  <th scope="col">Count</th>
                  <th scope="col">Type</th>
                  <th scope="col">Subscriber</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Error</th>
                  <th scope="col">First seen</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                ${data.groups.map(
                  (g) =>
                    html`<tr data-group="${g.id}">
                      ${number(g.count)}
                      <td>${short(g.type)}</td>
                      <td>${short(g.subscriber)}</td>
                      <td>${full(g.reason)}</td>
                      <td><code>${short(g.errorName, 60)}</code>: ${short(g.message, 200)}</td>
                      <td>${time(g.firstSeen)}</td>
                      <td>${time(g.lastSeen)}</td>
                      <td>
                        <a href="${link(ctx, `/dead-letters/${encodeURIComponent(g.sampleId)}`)}"
                          >Inspect</a
                        >
                        ${actionButtons(ctx, { group: g.id, ...(Object.keys(filter).length > 0 ? { filter } : {}) }, "group")}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
  );
}

/** One dead letter: error with stack, payload, attempts; replay or purge it. */
export function deadLetterPage(ctx: PageContext, d: DeadLetterInfo): Html {
  return layout(
    ctx,
    "dead-letter",
    `Dead letter ${short(d.id, 40)}`,
    html` ${actionPanel(ctx)}
      <p>${actionButtons(ctx, { id: d.id }, "this one")}</p>
      <dl class="facts">
        <dt>Status</dt>
        <dd>${badge(d.status)}</dd>
        <dt>Event</dt>
        <dd>
          <a href="${link(ctx, `/events/${encodeURIComponent(d.eventId)}`)}"
            >${full(d.eventType)} ${full(d.eventId)}</a
          >
        </dd>
        <dt>Subscriber</dt>
        <dd>${full(d.subscriber)} (${full(d.origin)})</dd>
        <dt>Reason</dt>
        <dd>${full(d.reason)}</dd>
        <dt>Attempts</dt>
        <dd>${d.attempts} · replayed ${d.replays} time${d.replays === 1 ? "" : "s"}</dd>
        <dt>First failed</dt>
        <dd>${time(d.firstFailedAt)}</dd>
        <dt>Last failed</dt>
        <dd>${time(d.lastFailedAt)}</dd>
        ${
          d.replayedAt
            ? html`<dt>Replayed</dt>
                <dd>${time(d.replayedAt)}</dd>`
            : ""
        }
        ${
          d.damaged
            ? html`<dt>Damaged</dt>
                <dd class="error">${full(d.damaged)}</dd>`
            : ""
        }
      </dl>
      <section class="panel" aria-labelledby="error-h">
        <h2 id="error-h">Error</h2>
        <pre class="payload" id="error" tabindex="0">${pretty(d.error)}</pre>
      </section>
      <section class="panel" aria-labelledby="payload-h">
        <h2 id="payload-h">Envelope</h2>
        <pre class="payload" id="payload" tabindex="0">
${d.envelope ? pretty(d.envelope) : "(purged or unreadable)"}</pre>
      </section>`,
  );
}

/** Daemons from their heartbeats. */
export function daemonsPage(
  ctx: PageContext,
  list: readonly DaemonView[],
  supported: boolean,
): Html {
  const healthOf = (h: unknown) => {
    const r = (h ?? {}) as { status?: unknown; message?: unknown };
    return {
      status: typeof r.status === "string" ? r.status : "unknown",
      message: typeof r.message === "string" ? r.message : "",
    };
  };
  const stat = (s: unknown, key: string) => {
    const v = (s as Record<string, unknown> | null)?.[key];
    return typeof v === "number" ? v : "—";
  };
  return layout(
    ctx,
    "daemons",
    "Daemons",
    !supported
      ? html`<p class="muted">This transport stores no daemon heartbeats.</p>`
      : list.length === 0
        ? html`<p class="muted">
            No heartbeats yet (a DaemonManager with the driver's heartbeat sink writes them).
          </p>`
        : html`<table class="data" id="daemons">
            <thead>
              <tr>
                <th scope="col">Daemon</th>
                <th scope="col">State</th>
                <th scope="col">Status</th>
                <th scope="col">Health</th>
                <th scope="col">Last beat</th>
                <th scope="col">Started</th>
                <th scope="col">Restarts</th>
                <th scope="col">Processed</th>
                <th scope="col">Errors</th>
                <th scope="col">Where</th>
              </tr>
            </thead>
            <tbody>
              ${list.map((d) => {
                const h = healthOf(d.health);
                return html`<tr>
                  <td>${short(d.daemon)}</td>
                  <td>${badge(d.state)}</td>
                  <td>${short(d.status, 40)}</td>
                  <td>${badge(h.status)} ${short(h.message, 300)}</td>
                  <td>${ago(d.ageMs)} ago</td>
                  <td>${time(d.startedAt)}</td>
                  ${number(d.restarts)}
                  <td class="num">${stat(d.stats, "eventsProcessed")}</td>
                  <td class="num">${stat(d.stats, "errorsCount")}</td>
                  <td>pid ${d.pid} on ${short(d.host, 60)}</td>
                </tr>`;
              })}
            </tbody>
          </table>`,
  );
}

/**
 * Who publishes and consumes each event type, from the contracts daemons announce: a type whose
 * issues break a contract is unhealthy (with the fields that break, publisher → consumer), one
 * with drift only (nobody consumes it yet, not in the catalog) degraded.
 */
export function contractsPage(ctx: PageContext, view: ContractsView): Html {
  const endpoints = (list: readonly TypeEndpoint[]) =>
    list.length === 0
      ? "—"
      : html`<ul class="endpoints">
          ${list.map(
            (e) =>
              html`<li>
                ${short(e.daemon, 80)}${e.stale ? " (stale)" : ""} v${e.version}
                <code title="${e.schemaHash}">${short(e.schemaHash, 8)}</code>
              </li>`,
          )}
        </ul>`;
  const state = (issues: readonly TopologyIssue[]) =>
    issues.length === 0
      ? "healthy"
      : issues.some((i) => BREAKING_TOPOLOGY_ISSUES.has(i))
        ? "unhealthy"
        : "degraded";
  const breaking = view.types.filter((t) => t.breaks.length > 0);
  return layout(
    ctx,
    "contracts",
    "Contracts",
    !view.supported
      ? html`<p class="muted">
          This transport stores no daemon heartbeats, where contracts are announced.
        </p>`
      : view.types.length === 0 && view.silent.length === 0
        ? html`<p class="muted">
            No announcements yet: daemons under a DaemonManager with the driver's heartbeat sink
            announce the types they publish and consume.
          </p>`
        : html`<p class="muted">
              ${
                view.consistent
                  ? "Every publisher's schema is accepted by its consumers."
                  : "Some types need attention (below)."
              }
              ${
                view.catalogCompared
                  ? " Announcements are compared with each other and with the catalog."
                  : " Announcements are compared with each other; give the dashboard the catalog to compare them with it too."
              }
            </p>
            <table class="data" id="contracts">
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">State</th>
                  <th scope="col">Publishers</th>
                  <th scope="col">Consumers</th>
                  <th scope="col">Issues</th>
                </tr>
              </thead>
              <tbody>
                ${view.types.map(
                  (t) =>
                    html`<tr>
                      <td>${short(t.type, 80)}</td>
                      <td>${badge(state(t.issues))}</td>
                      <td>${endpoints(t.publishers)}</td>
                      <td>${endpoints(t.consumers)}</td>
                      <td>${t.issues.map((i) => TOPOLOGY_ISSUE_TEXT[i]).join("; ") || "ok"}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
            ${
              breaking.length > 0
                ? html`<section class="panel" aria-labelledby="breaks-h">
                    <h2 id="breaks-h">Breaking differences</h2>
                    <ul id="breaks">
                      ${breaking.flatMap((t) =>
                        t.breaks.map(
                          (b) =>
                            html`<li>
                              ${short(t.type, 80)}: ${short(b.publisher, 80)} →
                              ${short(b.consumer, 80)}: ${short(b.message, 300)}
                            </li>`,
                        ),
                      )}
                    </ul>
                  </section>`
                : ""
            }
            ${
              view.silent.length > 0
                ? html`<p class="muted" id="silent">
                    Daemons announcing no contracts:
                    ${view.silent.map((d) => short(d, 80)).join(", ")}.
                  </p>`
                : ""
            }`,
  );
}

const VERDICT_BADGE = { complete: "healthy", incomplete: "degraded", uncertain: "stale" } as const;

/** One declared pipeline's verification per key: stages reached with counts, last time, verdict. */
function pipelineKeysTable(ctx: PageContext, view: PipelineKeysView, index: number): Html {
  const id = `keys-${index}`;
  return html`<section class="panel" aria-labelledby="${id}-h">
    <h2 id="${id}-h">
      Pipeline ${short(view.pipeline, 80)} per ${short(view.key, 80)}, last
      ${Math.round(view.hours * 10) / 10} h
    </h2>
    <p class="muted">
      The verdict of <code>switchyard pipeline verify &lt;${short(view.key, 80)}&gt;</code>: ✓ count
      of events per stage, ✗ none, ? not known (older events removed).
    </p>
    ${view.warnings.map((w) => html`<p class="warning">${full(w)}</p>`)}
    ${
      view.keys.length === 0
        ? html`<p class="muted" id="${id}-none">
            No ${short(view.key, 80)} had an event of this pipeline in the window.
          </p>`
        : html`<div
            class="scroll"
            tabindex="0"
            role="region"
            aria-label="${short(view.pipeline, 80)} per ${short(view.key, 80)}"
          >
            <table class="data pipeline-keys" id="${id}" data-pipeline="${view.pipeline}">
              <thead>
                <tr>
                  <th scope="col">${short(view.key, 80)}</th>
                  ${view.stages.map((stage, i) => html`<th scope="col" class="num">${i + 1}. ${short(stage, 60)}</th>`)}
                  <th scope="col">Last event</th>
                  <th scope="col">Verdict</th>
                </tr>
              </thead>
              <tbody>
                ${view.keys.map(
                  (k) =>
                    html`<tr data-key="${k.key}">
                      <th scope="row">${short(k.key, 80)}</th>
                      ${k.stages.map((s) => html`<td class="num stage-${s.ok ? "ok" : s.uncertain ? "unknown" : "missing"}">${s.ok ? "✓" : s.uncertain ? "?" : "✗"} ${s.count}</td>`)}
                      <td>${time(k.lastAt)}</td>
                      <td>
                        <span class="badge badge-${VERDICT_BADGE[k.verdict]}">${k.verdict}</span
                        >${k.missing.length > 0 ? html` <span class="muted">missing ${short(k.missing.join(", "), 300)}</span>` : ""}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </div>`
    }
    ${view.keysTruncated ? html`<p class="muted">The ${view.keys.length} newest only.</p>` : ""}
  </section>`;
}

/** The pipeline graph, laid out on the server (dagre) and drawn as SVG, and each declared pipeline per key. */
export function pipelinePage(ctx: PageContext, graph: PipelineGraph, keys: PipelineKeys): Html {
  const colour = (flow: number) =>
    flow === 0 ? "flow-none" : flow < 10 ? "flow-low" : "flow-high";
  return layout(
    ctx,
    "pipeline",
    "Pipeline",
    html` <p class="muted">
        ${graph.pipelines.length > 0 ? `Declared pipelines: ${graph.pipelines.map(full).join(", ")}.` : "No declared pipeline (pass catalog to createDashboard): the graph shows event types and the subscribers consuming them."}
        Edges: flow over the last ${graph.window}. Window:
        ${Object.keys(WINDOWS).map((w) => html` <a href="${link(ctx, `/pipeline?window=${w}`)}" ${w === graph.window ? html` aria-current="true"` : ""}>${w}</a>`)}
      </p>
      ${
        graph.nodes.length === 0
          ? html`<p class="muted">Nothing to draw yet.</p>`
          : html`<svg
              id="pipeline-graph"
              class="graph"
              viewBox="0 0 ${Math.ceil(graph.width)} ${Math.ceil(graph.height)}"
              width="${Math.ceil(graph.width)}"
              height="${Math.ceil(graph.height)}"
              role="img"
              aria-labelledby="graph-title"
            >
              <title id="graph-title">Event types and their subscribers</title>
              <defs>
                <marker
                  id="arrow"
                  viewBox="0 0 10 10"
                  refX="10"
                  refY="5"
                  markerWidth="8"
                  markerHeight="8"
                  orient="auto-start-reverse"
                >
                  <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
                </marker>
              </defs>
              ${graph.edges.map((e) => html`<g class="edge ${e.kind} ${colour(e.flow)}"><path d="${e.path}" marker-end="url(#arrow)" /><title>${full(e.from)} → ${full(e.to)}: ${e.flow} events</title></g>`)}
              ${graph.nodes.map((n) => html`<g class="node ${n.kind}${n.drift ? " drift" : ""}" transform="translate(${Math.round(n.x - n.width / 2)},${Math.round(n.y - n.height / 2)})"><rect width="${n.width}" height="${n.height}" rx="6" /><text x="${n.width / 2}" y="${n.height / 2 - 4}" text-anchor="middle">${short(n.label, 28)}</text><text x="${n.width / 2}" y="${n.height / 2 + 12}" text-anchor="middle" class="sub">${full(n.detail)}</text><title>${full(n.label)}: ${full(n.detail)}${n.drift ? " (published, never consumed)" : ""}</title></g>`)}
            </svg>`
      }
      <table class="data" id="pipeline-types">
        <thead>
          <tr>
            <th scope="col">Event type</th>
            <th scope="col">Events (${graph.window})</th>
            <th scope="col">Consumed by</th>
          </tr>
        </thead>
        <tbody>
          ${graph.nodes
            .filter((n) => n.kind === "type")
            .map(
              (n) =>
                html`<tr>
                  <td>
                    ${short(n.label)}${n.drift ? html` <span class="badge badge-degraded">never consumed</span>` : ""}
                  </td>
                  ${number(n.flow)}
                  <td>
                    ${short(
                      graph.edges
                        .filter((e) => e.kind === "consumes" && e.from === n.label)
                        .map((e) => e.to)
                        .join(", ") || "—",
                      300,
                    )}
                  </td>
                </tr>`,
            )}
        </tbody>
      </table>
      ${keys.pipelines.map((view, i) => pipelineKeysTable(ctx, view, i))}`,
  );
}

export type { PageName };
