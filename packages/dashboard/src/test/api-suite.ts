/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- the API answers JSON, checked by value */
import { createEnvelope } from "@switchyard/event-schema";
import type { Driver } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DashboardHandler, createDashboard, serveDashboard } from "../index";
import { type Seeded, getJson, seed } from "./fixture";

const TOKEN = "test-token-0123456789";

/** The JSON API contract, run against each real driver available here (memory, SQLite). */
export function apiSuite(name: string, open: () => Promise<Driver>) {
  describe(`the JSON API on ${name}`, () => {
    let driver: Driver;
    let dash: DashboardHandler;
    let seeded: Seeded;
    const get = (path: string) => getJson(dash, `/ops${path}`);
    const post = (path: string, body: unknown) =>
      dash(
        new Request(`http://dash.test/ops${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
          body: JSON.stringify(body),
        }),
      );

    beforeAll(async () => {
      driver = await open();
      seeded = await seed(driver);
      dash = createDashboard(driver, {
        basePath: "/ops/",
        actions: { token: TOKEN },
        catalog: {
          pipelines: [
            {
              name: "training",
              key: "config_key",
              stages: ["TRAINING_COMPLETED", "MODEL_PROMOTED"],
            },
          ],
        },
      });
    });
    afterAll(async () => {
      await dash?.close();
      await driver?.close();
    });

    it("lists its endpoints and the transport's capabilities", async () => {
      const { status, body } = await get("/api");
      expect(status).toBe(200);
      expect(body.transport).toBe(driver.inspector().transport);
      expect(body.actions).toBe(true);
      expect(body.endpoints).toContain("POST api/dead-letters/replay");
    });

    it("answers the overview: checks, backlog, dead-letter depth, daemons and throughput", async () => {
      const { status, body } = await get("/api/overview?window=15m");
      expect(status).toBe(200);
      expect(body.deadLetters.depth).toBe(4);
      expect(body.backlog.subscribers).toBe(4);
      expect(body.backlog.lag).toBe(0);
      expect(body.daemons).toEqual({ up: 1, stale: 1, stopped: 0, failed: 1, total: 3 });
      expect(body.throughput.window).toBe("15m");
      expect(body.throughput.totals).toMatchObject({
        TRAINING_COMPLETED: 1,
        MODEL_PROMOTED: 1,
        SELFPLAY_FAILED: 3,
      });
      expect(body.throughput.buckets.length).toBeGreaterThan(1);
      const checks = Object.fromEntries(body.health.checks.map((c: any) => [c.check, c.status]));
      expect(checks).toMatchObject({
        "daemon:trainer_daemon": "healthy",
        "daemon:old_daemon": "unhealthy",
        "daemon:crashy_daemon": "unhealthy",
        subscribers: "healthy",
        backlog: "healthy",
        "dead-letters": "healthy",
      });
      expect(body.health.status).toBe("unhealthy");
    });

    it("answers the health verdict with 503 when unhealthy", async () => {
      const { status, body } = await get("/api/health");
      expect(status).toBe(503);
      expect(body.status).toBe("unhealthy");
    });

    it("refuses an unknown window with a 400 naming the parameter", async () => {
      const { status, body } = await get("/api/overview?window=3y");
      expect(status).toBe(400);
      expect(body.error.message).toMatch(/^window must be one of 15m, 1h/);
    });

    it("sorts subscribers by any column", async () => {
      const byName = await get("/api/subscribers?sort=subscriber");
      expect(byName.body.subscribers.map((s: any) => s.subscriber)).toEqual([
        "auditor",
        "pill_eater",
        "promoter",
        "selfplay_watch",
      ]);
      const byDead = await get("/api/subscribers?sort=dead&dir=desc");
      expect(byDead.body.subscribers[0]).toMatchObject({ subscriber: "selfplay_watch", dead: 3 });
      expect((await get("/api/subscribers?sort=nope")).status).toBe(400);
    });

    it("filters events by type and subject and pages them with a cursor", async () => {
      const byType = await get("/api/events?type=SELFPLAY_FAILED&limit=2");
      expect(byType.body.events).toHaveLength(2);
      expect(byType.body.events.every((e: any) => e.type === "SELFPLAY_FAILED")).toBe(true);
      expect(byType.body.next).toBeDefined();
      const rest = await get(
        `/api/events?type=SELFPLAY_FAILED&limit=2&cursor=${encodeURIComponent(byType.body.next)}`,
      );
      expect(rest.body.events).toHaveLength(1);
      expect(rest.body.next).toBeUndefined();
      const seqs = [...byType.body.events, ...rest.body.events].map((e: any) => e.seq);
      expect(new Set(seqs).size).toBe(3);
      const bySubject = await get("/api/events?subject=hex8_2p&order=oldest");
      expect(bySubject.body.events.map((e: any) => e.type)).toEqual([
        "TRAINING_COMPLETED",
        "MODEL_PROMOTED",
      ]);
      const future = await get(
        `/api/events?since=${new Date(Date.now() + 3_600_000).toISOString()}`,
      );
      expect(future.body.events).toEqual([]);
      expect((await get("/api/events?since=yesterday")).status).toBe(400);
      expect((await get("/api/events?limit=0")).status).toBe(400);
    });

    it("answers one event with its deliveries and causation", async () => {
      const { status, body } = await get(`/api/events/${seeded.rootId}`);
      expect(status, JSON.stringify(body)).toBe(200);
      expect(body.event.type).toBe("TRAINING_COMPLETED");
      expect(body.deliveries).toEqual([
        expect.objectContaining({ subscriber: "promoter", state: "acked" }),
      ]);
      expect(body.causation.root.caused.map((n: any) => n.event.id)).toEqual([seeded.childId]);
      const child = await get(`/api/events/${seeded.childId}`);
      expect(child.body.causation.causes.map((e: any) => e.id)).toEqual([seeded.rootId]);
      expect((await get("/api/events/no-such-event")).status).toBe(404);
    });

    it("shows an event's dead letters on its delivery timeline", async () => {
      const failing = (await get("/api/events?type=SELFPLAY_FAILED&limit=1")).body.events[0];
      const { body } = await get(`/api/events/${failing.id}`);
      expect(body.deliveries).toEqual([
        expect.objectContaining({ subscriber: "selfplay_watch", state: "dead" }),
      ]);
      expect(body.deadLetters).toEqual([
        expect.objectContaining({
          eventId: failing.id,
          subscriber: "selfplay_watch",
          reason: "max_attempts",
        }),
      ]);
      const page = await (
        await dash(new Request(`http://dash.test/ops/events/${failing.id}`))
      ).text();
      expect(page).toContain("dead-lettered (max_attempts, 2 attempts)");
      expect(page).toContain(`/ops/dead-letters/${encodeURIComponent(body.deadLetters[0].id)}`);
      expect((await get(`/api/events/${seeded.rootId}`)).body.deadLetters).toEqual([]);
    });

    it("filters dead letters by event id, and the event's page links to them", async () => {
      const [one, other] = (await get("/api/events?type=SELFPLAY_FAILED&limit=2")).body.events;
      const groups = await get(`/api/dead-letters?eventId=${encodeURIComponent(one.id)}`);
      expect(groups.body.filter).toMatchObject({ eventId: one.id });
      expect(groups.body.scanned).toBe(1);
      expect(groups.body.groups).toEqual([
        expect.objectContaining({
          type: "SELFPLAY_FAILED",
          subscriber: "selfplay_watch",
          count: 1,
        }),
      ]);
      const records = await get(
        `/api/dead-letters/records?eventId=${encodeURIComponent(other.id)}`,
      );
      expect(records.body.deadLetters.map((d: any) => d.eventId)).toEqual([other.id]);
      expect((await get("/api/dead-letters?eventId=no-such-event")).body.scanned).toBe(0);
      const page = await (await dash(new Request(`http://dash.test/ops/events/${one.id}`))).text();
      expect(page).toContain(
        `/ops/dead-letters?eventId=${encodeURIComponent(one.id)}&amp;status=all`,
      );
      const dry = await post("/api/dead-letters/replay", {
        filter: { eventId: one.id },
        dryRun: true,
      });
      expect(await dry.json()).toMatchObject({ action: "replay", dryRun: true, count: 1 });
    });

    it("says whether the transport keeps a delivery timeline, and shows it for an event that retried", async () => {
      const failing = (await get("/api/events?type=SELFPLAY_FAILED&limit=1")).body.events[0];
      const { body } = await get(`/api/events/${failing.id}`);
      const kept = driver.inspector().capabilities.history === true;
      expect(body.history).toBe(kept);
      const page = await (
        await dash(new Request(`http://dash.test/ops/events/${failing.id}`))
      ).text();
      if (kept) {
        // The contract: at least every step off the happy path.
        const kinds = body.deliveries[0].history.map((s: any) => s.kind);
        expect(kinds).toEqual(expect.arrayContaining(["retry_scheduled", "dead_lettered"]));
        expect(page).toContain('<tr data-kind="retry_scheduled">');
        expect(page).not.toContain("keeps no delivery history");
      } else expect(page).toContain("keeps no delivery history");
    });

    it("groups dead letters by signature with counts and first/last seen", async () => {
      const { body } = await get("/api/dead-letters");
      expect(body.scanned).toBe(4);
      expect(body.groups).toHaveLength(2);
      const [disk, pill] = body.groups;
      expect(disk).toMatchObject({
        type: "SELFPLAY_FAILED",
        subscriber: "selfplay_watch",
        reason: "max_attempts",
        errorName: "Error",
        message: "disk full",
        count: 3,
      });
      expect(disk.firstSeen <= disk.lastSeen).toBe(true);
      expect(pill).toMatchObject({ type: "POISON_PILL", reason: "unrecoverable", count: 1 });
      const filtered = await get("/api/dead-letters?subscriber=pill_eater");
      expect(filtered.body.groups.map((g: any) => g.type)).toEqual(["POISON_PILL"]);
      expect((await get("/api/dead-letters?reason=bogus")).status).toBe(400);
    });

    it("pages dead-letter records and answers one", async () => {
      const page = await get("/api/dead-letters/records?type=SELFPLAY_FAILED&limit=2");
      expect(page.body.deadLetters).toHaveLength(2);
      expect(page.body.next).toBeDefined();
      const one = await get(`/api/dead-letters/${page.body.deadLetters[0].id}`);
      expect(one.body).toMatchObject({
        eventType: "SELFPLAY_FAILED",
        subscriber: "selfplay_watch",
      });
      expect(one.body.error.message).toContain("disk full");
      expect((await get("/api/dead-letters/999999")).status).toBe(404);
    });

    it("answers the daemons with their state, failed and stale first", async () => {
      const { body } = await get("/api/daemons");
      expect(body.map((d: any) => [d.daemon, d.state])).toEqual([
        ["crashy_daemon", "failed"],
        ["old_daemon", "stale"],
        ["trainer_daemon", "up"],
      ]);
    });

    it("draws the pipeline: declared stages, consumers, drift", async () => {
      const { body } = await get("/api/pipeline?window=1h");
      expect(body.pipelines).toEqual(["training"]);
      const types = body.nodes.filter((n: any) => n.kind === "type").map((n: any) => n.label);
      expect(types).toEqual(
        expect.arrayContaining(["TRAINING_COMPLETED", "MODEL_PROMOTED", "SELFPLAY_FAILED"]),
      );
      expect(body.edges).toContainEqual(
        expect.objectContaining({
          kind: "stage",
          from: "TRAINING_COMPLETED",
          to: "MODEL_PROMOTED",
          flow: 1,
        }),
      );
      expect(body.edges).toContainEqual(
        expect.objectContaining({ kind: "consumes", from: "MODEL_PROMOTED", to: "auditor" }),
      );
      for (const e of body.edges) expect(e.path).toMatch(/^M\d+,\d+( L\d+,\d+)+$/);
      expect(body.nodes.every((n: any) => Number.isFinite(n.x) && Number.isFinite(n.y))).toBe(true);
    });

    it("verifies the declared pipeline per key: stages with counts, last time, verdict", async () => {
      const { status, body } = await get("/api/pipeline/keys?window=1h");
      expect(status).toBe(200);
      const [training] = body.pipelines;
      expect(training).toMatchObject({
        pipeline: "training",
        key: "config_key",
        stages: ["TRAINING_COMPLETED", "MODEL_PROMOTED"],
        warnings: [],
      });
      const hex = training.keys.find((k: any) => k.key === "hex8_2p");
      expect(hex).toMatchObject({ ok: true, verdict: "complete", missing: [] });
      expect(hex.stages.map((s: any) => s.count)).toEqual([1, 1]);
      expect(hex.lastAt).toBe(hex.stages[1].lastAt);
      const page = await (await dash(new Request("http://dash.test/ops/pipeline"))).text();
      expect(page).toMatch(/<tr data-key="hex8_2p">[\s\S]*?complete/);
    });

    it("serves the Prometheus metrics under the base path", async () => {
      const response = await dash(new Request("http://dash.test/ops/metrics"));
      expect(response.status).toBe(200);
      expect(await response.text()).toContain(
        'switchyard_subscriber_dead{subscriber="selfplay_watch"} 3',
      );
    });

    it("serves /metrics over real HTTP on loopback", async () => {
      await using served = await serveDashboard({ driver, port: 0, basePath: "/ops/" });
      expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ops\/$/);
      const response = await fetch(`${served.url}metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      const text = await response.text();
      expect(text).toMatch(/^switchyard_up 1$/m);
      expect(text).toMatch(/^# TYPE switchyard_subscriber_backlog gauge$/m);
      expect(text).toMatch(/^switchyard_subscriber_backlog\{subscriber="selfplay_watch"\} \d+$/m);
    });

    it("replays one dead letter after a dry run that changes nothing", async () => {
      const pill = (await get("/api/dead-letters/records?subscriber=pill_eater")).body
        .deadLetters[0];
      const dry = await post("/api/dead-letters/replay", { id: pill.id, dryRun: true });
      expect(await dry.json()).toMatchObject({ action: "replay", dryRun: true, count: 1 });
      expect((await get(`/api/dead-letters/${pill.id}`)).body.replays).toBe(0);
      const done = await post("/api/dead-letters/replay", { id: pill.id });
      expect(await done.json()).toMatchObject({ dryRun: false, count: 1, replayed: [pill.id] });
      // The pill fails again after the replay (and may be dead-lettered again): its record counts the replay.
      expect((await get(`/api/dead-letters/${pill.id}`)).body.replays).toBe(1);
    });

    it("purges a group after a dry run, and the group is gone", async () => {
      const group = (await get("/api/dead-letters?subscriber=selfplay_watch")).body.groups[0];
      const dry = await post("/api/dead-letters/purge", { group: group.id, dryRun: true });
      expect(await dry.json()).toMatchObject({ action: "purge", dryRun: true, count: 3 });
      expect((await get("/api/dead-letters?subscriber=selfplay_watch")).body.groups[0].count).toBe(
        3,
      );
      const done = await post("/api/dead-letters/purge", { group: group.id });
      const result = (await done.json()) as { backups: string[] };
      expect(result).toMatchObject({ dryRun: false, count: 3 });
      if (driver.capabilities.backup) expect(result.backups.length).toBeGreaterThan(0);
      expect((await get("/api/dead-letters?subscriber=selfplay_watch")).body.groups).toEqual([]);
      const gone = await post("/api/dead-letters/purge", { group: group.id, dryRun: true });
      expect(gone.status).toBe(400);
    });

    it("refuses an action body that names no single target", async () => {
      for (const body of [
        {},
        { id: "1", group: "x" },
        { filter: {} },
        { filter: { colour: "red" } },
        [1],
      ]) {
        const response = await post("/api/dead-letters/replay", body);
        expect(response.status, JSON.stringify(body)).toBe(400);
      }
    });

    it("resumes a reconnecting live tail after the Last-Event-ID it names", async () => {
      const fast = createDashboard(driver, { tailIntervalMs: 50 });
      const [a, b, c] = ["one", "two", "three"].map((n) =>
        createEnvelope({ type: "RESUME_TEST", source: "t", data: { n } }),
      );
      await driver.transport().publish([a!]);
      await driver.transport().publish([b!]);
      await driver.transport().publish([c!]);
      const seqOf = async (id: string) => (await get(`/api/events/${id}`)).body.event.seq as number;
      const abort = new AbortController();
      const response = await fast(
        new Request("http://dash.test/api/events/stream?type=RESUME_TEST", {
          signal: abort.signal,
          headers: { "last-event-id": String(await seqOf(a!.id)) },
        }),
      );
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes(c!.id)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      expect(text).not.toContain(a!.id);
      expect(text.indexOf(b!.id)).toBeGreaterThan(0);
      expect(text.indexOf(c!.id)).toBeGreaterThan(text.indexOf(b!.id));
      abort.abort();
      await fast.close();
      await reader.cancel().catch(() => {});
    });

    it("streams events published after the tail starts (server-sent events)", async () => {
      const fast = createDashboard(driver, { tailIntervalMs: 50 });
      const abort = new AbortController();
      const response = await fast(
        new Request("http://dash.test/api/events/stream?type=TAIL_TEST", { signal: abort.signal }),
      );
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const read = async (until: (t: string) => boolean) => {
        while (!until(text)) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
        }
      };
      await read((t) => t.includes("event: ready"));
      const before = createEnvelope({ type: "OTHER_TYPE", source: "t", data: {} });
      const tailed = createEnvelope({ type: "TAIL_TEST", source: "t", data: { n: 1 } });
      await driver.transport().publish([before, tailed]);
      await read((t) => t.includes(tailed.id));
      expect(text).toContain("event: event");
      expect(text).not.toContain(before.id);
      abort.abort();
      await fast.close();
      await reader.cancel().catch(() => {});
    });
  });
}
