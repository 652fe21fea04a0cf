import { createEnvelope } from "@switchyard/event-schema";
import type { DeadLetterInfo, Driver, Inspector } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadLetterGroups } from "./data";
import { createDashboard } from "./index";
import { getJson, memory, seed, until } from "./test/fixture";

const TOKEN = "s3cret-token-for-tests";

let driver: Driver;
beforeAll(async () => {
  driver = await memory();
  await seed(driver);
});
afterAll(() => driver?.close());

const depth = async () => (await driver.inspector().deadLetterCounts()).depth;

describe("a window named after an Object.prototype property", () => {
  // `WINDOWS.constructor` exists on every object: it must not pass for a window.
  const names = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];

  it("is refused with a 400 naming the parameter on every endpoint taking a window", async () => {
    const dash = createDashboard(driver);
    for (const endpoint of ["overview", "counts", "pipeline", "pipeline/keys"])
      for (const name of names) {
        const { status, body } = await getJson(dash, `/api/${endpoint}?window=${name}`);
        expect(status, `${endpoint}?window=${name}`).toBe(400);
        expect(body.error.code).toBe("INVALID_REQUEST");
        expect(body.error.message).toMatch(/^window must be one of 15m, 1h/);
      }
  });

  it("is refused on the pages too, with the message on the page", async () => {
    const dash = createDashboard(driver);
    for (const path of ["/?window=toString", "/pipeline?window=valueOf"]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      expect(response.status, path).toBe(400);
      expect(await response.text()).toContain("window must be one of");
    }
  });
});

describe("a dead-letter action whose dryRun or again is not a boolean", () => {
  const act = (action: string, body: unknown) =>
    createDashboard(driver, { actions: { token: TOKEN } })(
      new Request(`http://dash.test/api/dead-letters/${action}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
        body: JSON.stringify(body),
      }),
    );

  it("is refused with a 400 instead of acting for real", async () => {
    const before = await depth();
    expect(before).toBeGreaterThan(0);
    for (const dryRun of ["true", 1, "yes", null, {}]) {
      const response = await act("purge", { filter: { subscriber: "selfplay_watch" }, dryRun });
      const body = (await response.json()) as { error?: { code: string; message: string } };
      expect(response.status, JSON.stringify(dryRun)).toBe(400);
      expect(body.error?.message).toMatch(/^dryRun must be true or false/);
    }
    const again = await act("replay", { filter: { subscriber: "selfplay_watch" }, again: "no" });
    expect(again.status).toBe(400);
    expect(await depth()).toBe(before);
  });

  it("is refused with a 400 when a field is misspelled, instead of ignoring it and acting", async () => {
    const before = await depth();
    for (const body of [
      { filter: { subscriber: "selfplay_watch" }, dryrun: true },
      { filter: { subscriber: "selfplay_watch" }, dry_run: true },
      { filter: { subscriber: "selfplay_watch" }, dryRun: true, agian: true },
    ]) {
      const response = await act("purge", body);
      const answer = (await response.json()) as { error?: { code: string; message: string } };
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(answer.error?.code).toBe("INVALID_REQUEST");
      expect(answer.error?.message).toMatch(
        /^"(dryrun|dry_run|agian)" is not a field of an action body: use id, group, filter, dryRun, again\.$/,
      );
    }
    expect(await depth()).toBe(before);
  });

  it("still counts with dryRun: true and leaves everything in place", async () => {
    const before = await depth();
    const response = await act("purge", {
      filter: { subscriber: "selfplay_watch" },
      dryRun: true,
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { dryRun: boolean }).dryRun).toBe(true);
    expect(await depth()).toBe(before);
  });
});

describe("a scan bound that is not a whole number", () => {
  it("is refused when the dashboard is created, naming the option, not on every page read", () => {
    for (const option of ["maxGroupScan", "maxPipelineScan"] as const)
      for (const value of [2.5, 0, -3, Number.NaN, Infinity])
        expect(() => createDashboard(driver, { [option]: value }), `${option} ${value}`).toThrow(
          new RegExp(`^${option}: expected a positive integer; got ${String(value)}\\.$`),
        );
  });
});

describe("a closed dashboard", () => {
  it("refuses a new live tail with a 503 instead of opening a stream an EventSource reopens", async () => {
    const dash = createDashboard(driver, { tailIntervalMs: 50 });
    await dash.close();
    const response = await dash(new Request("http://dash.test/api/events/stream"));
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("CLOSED");
    // The pages and the rest of the API still answer.
    expect((await getJson(dash, "/api/subscribers")).status).toBe(200);
  });
});

describe("an inspector that does not answer", () => {
  /** The driver's inspector, with `subscribers` stuck in a call that ignores its signal. */
  const stuck = () => {
    const inspector = driver.inspector();
    const seen: AbortSignal[] = [];
    const proxy = new Proxy(inspector, {
      get(target, key) {
        if (key === "subscribers")
          return (options?: { signal?: AbortSignal }) => {
            if (options?.signal) seen.push(options.signal);
            return new Promise<never>(() => {});
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    return { inspector: proxy, seen };
  };

  it("gets a 504 JSON error on the API after inspectorTimeoutMs, and its read is aborted", async () => {
    const { inspector, seen } = stuck();
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 50 });
    const { status, body } = await getJson(dash, "/api/subscribers");
    expect(status).toBe(504);
    expect(body.error.code).toBe("INSPECTOR_TIMEOUT");
    expect(body.error.message).toContain("did not answer within 50 ms");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((signal) => signal.aborted)).toBe(true);
  });

  it("gets a page that says so instead of a page that never loads", async () => {
    const dash = createDashboard(stuck().inspector, { inspectorTimeoutMs: 50 });
    for (const path of ["/subscribers", "/"]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      expect(response.status, path).toBe(504);
      expect(response.headers.get("content-type")).toContain("text/html");
      expect(await response.text()).toContain("did not answer within 50 ms");
    }
  });

  it("answers a HEAD request (an uptime check) with the 504 too, instead of hanging", async () => {
    const { inspector, seen } = stuck();
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 50 });
    for (const path of ["/api/subscribers", "/subscribers"]) {
      const response = await dash(new Request(`http://dash.test${path}`, { method: "HEAD" }));
      expect(response.status, path).toBe(504);
    }
    expect(seen.every((signal) => signal.aborted)).toBe(true);
  });

  it("leaves the other reads answering", async () => {
    const dash = createDashboard(stuck().inspector, { inspectorTimeoutMs: 50 });
    expect((await getJson(dash, "/api/events?limit=1")).status).toBe(200);
  });

  it("does not cut short a dead-letter action that outlasts it: the action ends with its outcome", async () => {
    // Every call of the driver's admin and inspector answers only after 150 ms.
    const slow = <T extends object>(target: T): T =>
      new Proxy(target, {
        get(t, key) {
          const value: unknown = Reflect.get(t, key);
          if (typeof value !== "function") return value;
          return async (...args: unknown[]) => {
            await new Promise((resolve) => setTimeout(resolve, 150));
            return (value as (...a: unknown[]) => unknown).apply(t, args);
          };
        },
      });
    const slowDriver = new Proxy(driver, {
      get(target, key) {
        if (key === "admin") return () => slow(target.admin());
        if (key === "inspector") return () => slow(target.inspector());
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    const dash = createDashboard(slowDriver, {
      inspectorTimeoutMs: 50,
      actions: { token: TOKEN },
    });
    const response = await dash(
      new Request("http://dash.test/api/dead-letters/purge", {
        method: "POST",
        headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
        body: JSON.stringify({ filter: { subscriber: "selfplay_watch" }, dryRun: true }),
      }),
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as { dryRun: boolean }).dryRun).toBe(true);
  });

  it("is bounded only by a positive inspectorTimeoutMs", () => {
    for (const inspectorTimeoutMs of [0, -1, Number.NaN, Infinity])
      expect(() => createDashboard(driver, { inspectorTimeoutMs })).toThrow(/inspectorTimeoutMs/);
  });
});

describe("the live tail's reads and waits", () => {
  /**
   * The driver's inspector whose `events` reads hang from call `from` on (0: every read), ignoring
   * their signal; `seen` holds the signal of every read, `calls` counts them.
   */
  const hanging = (from = 0) => {
    const inspector = driver.inspector();
    const seen: (AbortSignal | undefined)[] = [];
    let calls = 0;
    const proxy = new Proxy(inspector, {
      get(target, key) {
        if (key === "events")
          return (options?: { signal?: AbortSignal }) => {
            seen.push(options?.signal);
            if (calls++ >= from) return new Promise<never>(() => {});
            return target.events(options);
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    return { inspector: proxy, seen, calls: () => calls };
  };
  /** Everything the stream sends until it ends (bounded by the test's timeout). */
  const readAll = async (response: Response) => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += value;
    }
  };
  const aborted = (signal: AbortSignal | undefined) =>
    new Promise<void>((resolve, reject) => {
      if (!signal) return reject(new Error("the read was given no signal"));
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });

  it("ends the stream with an error event naming the timeout, and aborts the read", async () => {
    for (const from of [0, 1]) {
      // 0: the first read (before `ready`) hangs; 1: a poll after `ready` hangs.
      const { inspector, seen } = hanging(from);
      const dash = createDashboard(inspector, { inspectorTimeoutMs: 50, tailIntervalMs: 10 });
      const text = await readAll(await dash(new Request("http://dash.test/api/events/stream")));
      expect(text.includes("event: ready"), `from ${from}`).toBe(from > 0);
      const error = /event: error\ndata: (.*)\n/.exec(text);
      expect(error, text).not.toBeNull();
      expect(JSON.parse(error![1]!)).toEqual({
        code: "INSPECTOR_TIMEOUT",
        message: "The transport's inspector did not answer the live tail within 50 ms.",
      });
      // The hung read is the last one, and was aborted; the tail read nothing after it.
      expect(seen.length).toBe(from + 1);
      expect(seen.at(-1)?.aborted).toBe(true);
      await dash.close();
    }
  });

  it("aborts the read in progress when the client goes", async () => {
    const { inspector, seen } = hanging(1);
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 60_000, tailIntervalMs: 10 });
    const client = new AbortController();
    const response = await dash(
      new Request("http://dash.test/api/events/stream", { signal: client.signal }),
    );
    const reader = response.body!.getReader();
    await reader.read(); // `ready`
    await until(() => seen.length === 2);
    client.abort();
    await aborted(seen[1]);
    await reader.cancel().catch(() => {});
    await dash.close();
  });

  it("aborts the read in progress when the response stream is cancelled", async () => {
    const { inspector, seen } = hanging(1);
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 60_000, tailIntervalMs: 10 });
    const response = await dash(new Request("http://dash.test/api/events/stream"));
    const reader = response.body!.getReader();
    await reader.read(); // `ready`
    await until(() => seen.length === 2);
    await reader.cancel();
    await aborted(seen[1]);
    await dash.close();
  });

  it("aborts the read in progress when the dashboard closes, and the stream ends", async () => {
    const { inspector, seen } = hanging(1);
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 60_000, tailIntervalMs: 10 });
    const response = await dash(new Request("http://dash.test/api/events/stream"));
    const text = readAll(response);
    await until(() => seen.length === 2);
    await dash.close();
    await aborted(seen[1]);
    expect(await text).toContain("event: ready");
  });

  it("answers a HEAD request with the headers and starts no tail nobody would read", async () => {
    const { inspector, calls } = hanging(Infinity);
    const dash = createDashboard(inspector, { tailIntervalMs: 10 });
    const response = await dash(
      new Request("http://dash.test/api/events/stream", { method: "HEAD" }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    // A tail started reads at once, then every 10 ms (until its unread stream fills).
    await until(() => calls() > 0, 200).catch(() => {});
    expect(calls()).toBe(0);
    await dash.close();
  });

  it("sleeps a tailIntervalMs beyond 2^31-1 ms instead of polling in a tight loop", async () => {
    const { inspector, calls } = hanging(Infinity);
    const dash = createDashboard(inspector, { tailIntervalMs: 2 ** 31 });
    const response = await dash(new Request("http://dash.test/api/events/stream"));
    // Read as a client does (a stream nobody reads would hold the tail by back-pressure).
    const text = readAll(response);
    // A timer of 2^31 ms fires after 1 ms: a spinning tail reads hundreds of times in 200 ms.
    await until(() => calls() > 20, 200).catch(() => {});
    expect(calls()).toBeLessThanOrEqual(2);
    await dash.close();
    expect(await text).toContain("event: ready");
  });
});

describe("untrusted text carrying bidi controls", () => {
  const RLO = "\u202e";
  /**
   * Whether every U+202E shown on the page is inside a bidi isolate (LRI/RLI/FSI … PDI) and every
   * isolate is closed: then no override reorders the text after the value that carried it.
   */
  const contained = (page: string) => {
    // data-* attributes are for the scripts, never shown: they keep the value as it is.
    const shown = page.replace(/ data-[a-z-]+="[^"]*"/g, "");
    let depth = 0;
    for (const ch of shown)
      if (ch === "\u2066" || ch === "\u2067" || ch === "\u2068") depth++;
      else if (ch === "\u2069") depth = Math.max(0, depth - 1);
      else if (ch === RLO && depth === 0) return false;
    return depth === 0;
  };

  it("is isolated wherever a page shows it, so it cannot reorder what follows", async () => {
    await using bidi = await memory();
    const type = `EVIL${RLO}TYPE`;
    // A stray PDI first: it must not close the isolate before the override.
    const subscriber = `watch\u2069${RLO}er`;
    await bidi.transport().subscribe({
      subscriber,
      types: [type],
      maxAttempts: 1,
      handler: async () => {
        throw new Error(`disk ${RLO}full`);
      },
    });
    const event = createEnvelope({
      type,
      source: `src${RLO}x`,
      subject: `key${RLO}y`,
      data: { note: `gnp.${RLO}exe` },
    });
    await bidi.transport().publish([event]);
    await until(async () => (await bidi.inspector().deadLetterCounts()).depth === 1);
    const dash = createDashboard(bidi);
    const deadLetter = (await bidi.inspector().deadLetters({})).deadLetters[0]!;
    for (const path of [
      "/",
      "/events",
      "/subscribers",
      "/dead-letters",
      `/dead-letters/${deadLetter.id}`,
      `/events/${event.id}`,
      `/events/${encodeURIComponent(`no${RLO}such`)}`,
      "/pipeline",
    ]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      const page = await response.text();
      expect(page.includes(RLO), path).toBe(true);
      expect(contained(page), path).toBe(true);
    }
    // A payload shows its controls as the JSON escapes they are.
    const detail = await (await dash(new Request(`http://dash.test/events/${event.id}`))).text();
    expect(detail).toContain("gnp.\\u202eexe");
    // Text without any direction of its own is shown as it is, with nothing added.
    for (const path of ["/subscribers", "/dead-letters", "/events"]) {
      const plain = await (
        await createDashboard(driver)(new Request(`http://dash.test${path}`))
      ).text();
      expect(plain, path).toContain("selfplay");
      expect(plain, path).not.toMatch(/[\u2068\u2069]/);
    }
  });
});

describe("a dead-letter group with very many members", () => {
  it("is built in time linear in its size (150,000 records of one group)", async () => {
    // Quadratic grouping (a copy of the member list per record) makes this ~10^10 copies: minutes.
    const total = 150_000;
    const record = (i: number): DeadLetterInfo => ({
      id: String(i),
      eventId: `e${i}`,
      eventType: "MODEL_PROMOTED",
      subscriber: "promoter",
      origin: "router",
      reason: "max_attempts",
      status: "pending_retry",
      error: { name: "Error", message: "boom" },
      attempts: 5,
      replays: 0,
      firstFailedAt: "2026-01-01T00:00:00.000Z",
      lastFailedAt: "2026-01-01T00:00:00.000Z",
    });
    const inspector = {
      deadLetters: ({ limit, cursor }: { limit: number; cursor?: string }) => {
        const from = cursor ? Number(cursor) : 0;
        const to = Math.min(total, from + limit);
        return Promise.resolve({
          deadLetters: Array.from({ length: to - from }, (_, k) => record(from + k)),
          ...(to < total ? { next: String(to) } : {}),
        });
      },
    } as unknown as Inspector;
    const { groups, members, scanned } = await deadLetterGroups(inspector, {}, total);
    expect(scanned).toBe(total);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.count).toBe(total);
    expect(members.get(groups[0]!.id)).toHaveLength(total);
    // About 2 s on a loaded 2-core machine; quadratic did not finish in 300 s there.
  }, 60_000);
});

describe("hostile text in a JSON answer", () => {
  const RLO = "\u202e";
  /** A character a client showing the JSON text would act on: a control, or a bidi control. */
  const UNSAFE =
    // eslint-disable-next-line no-control-regex -- the C0 controls are what it looks for
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

  /** The raw text of the answer, and the error it parses to. */
  const answer = async (response: Response) => {
    const text = await response.text();
    return {
      status: response.status,
      text,
      body: JSON.parse(text) as { error?: { code: string; message: string } },
    };
  };

  it("is written as \\u escapes in every JSON error that echoes input (400, 403, 404, 500), and parses back the same", async () => {
    const hostile = `a${RLO}b\u2066c\u0085d\u2028e\u009bf`;
    const q = encodeURIComponent(hostile);
    const failing = new Proxy(driver.inspector(), {
      get(target, key) {
        if (key === "subscribers")
          return async () => {
            throw new Error(`disk ${hostile} full`);
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    const cases: [string, Promise<Response>, number][] = [
      ["unknown event", dash(new Request(`http://dash.test/api/events/${q}`)), 404],
      ["unknown dead letter", dash(new Request(`http://dash.test/api/dead-letters/${q}`)), 404],
      ["bad window", dash(new Request(`http://dash.test/api/counts?window=${q}`)), 400],
      ["bad limit", dash(new Request(`http://dash.test/api/dead-letters/records?limit=${q}`)), 400],
      ["bad sort", dash(new Request(`http://dash.test/api/subscribers?sort=${q}`)), 400],
      ["unknown route", dash(new Request(`http://dash.test/api/${q}`)), 404],
      [
        "bad action body",
        dash(
          new Request("http://dash.test/api/dead-letters/purge", {
            method: "POST",
            headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
            body: JSON.stringify({ filter: { [hostile]: 1 } }),
          }),
        ),
        400,
      ],
      [
        "cross-origin write",
        dash(
          new Request("http://dash.test/api/dead-letters/purge", {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "x-switchyard-token": TOKEN,
              origin: "http://evil.test\u009b",
            },
            body: "{}",
          }),
        ),
        403,
      ],
      [
        "inspector error",
        createDashboard(failing)(new Request("http://dash.test/api/subscribers")),
        500,
      ],
    ];
    for (const [what, response, status] of cases) {
      const { status: got, text, body } = await answer(await response);
      expect(got, what).toBe(status);
      expect(text, what).not.toMatch(UNSAFE);
      // Escapes in the JSON text, not changes to the value: a client parsing it gets the input.
      expect(body.error?.message, what).toMatch(/\u202e|\u009b/);
    }
  });

  it("is written as \\u escapes in the data answers and the live tail too", async () => {
    await using bidi = await memory();
    const type = `EVIL${RLO}TYPE\u0085`;
    await bidi.transport().register?.(`watch${RLO}er`, [type]);
    const event = createEnvelope({ type, source: "s", data: { note: `gnp.${RLO}exe` } });
    await bidi.transport().publish([event]);
    const dash = createDashboard(bidi, { tailIntervalMs: 20 });
    for (const path of ["/api/subscribers", "/api/events", `/api/events/${event.id}`]) {
      const { text } = await answer(await dash(new Request(`http://dash.test${path}`)));
      expect(text, path).toContain("\\u202e");
      expect(text, path).not.toMatch(UNSAFE);
    }
    const controller = new AbortController();
    const response = await dash(
      new Request("http://dash.test/api/events/stream", { signal: controller.signal }),
    );
    const reader = response.body!.getReader();
    let seen = "";
    const decoder = new TextDecoder();
    for (let i = 0; i < 50 && !seen.includes("event: ready"); i++)
      seen += decoder.decode((await reader.read()).value ?? new Uint8Array(), { stream: true });
    const later = createEnvelope({ type, source: "s", data: { note: `gnp.${RLO}exe` } });
    await bidi.transport().publish([later]);
    for (let i = 0; i < 50 && !seen.includes(later.id); i++)
      seen += decoder.decode((await reader.read()).value ?? new Uint8Array(), { stream: true });
    controller.abort();
    await reader.cancel().catch(() => {});
    await dash.close();
    expect(seen).toContain("\\u202e");
    expect(seen.replace(/\n/g, "")).not.toMatch(UNSAFE);
  });
});
