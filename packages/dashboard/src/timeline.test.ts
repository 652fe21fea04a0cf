/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- the API answers JSON, checked by value */
import { describe, expect, it } from "vitest";
import { createDashboard } from "./index";
import { getJson, memory, seed, withHistory } from "./test/fixture";

describe("the delivery timeline on the event page", () => {
  it("shows each subscriber's steps — time, kind, attempt, error's first line, delay, reason — escaped", async () => {
    await using driver = await memory();
    await seed(driver);
    const inspector = withHistory(driver.inspector(), (d) =>
      d.state === "dead"
        ? [
            {
              at: "2026-01-31T12:00:00.000Z",
              kind: "fenced",
              attempt: 1,
              by: "<b>worker-9</b>",
              detail: "<script>alert('fenced')</script> settle from a lost lease",
            },
          ]
        : [],
    );
    const dash = createDashboard(inspector);
    const failing = (await getJson(dash, "/api/events?type=SELFPLAY_FAILED&limit=1")).body
      .events[0];
    const { body } = await getJson(dash, `/api/events/${failing.id}`);
    expect(body.history).toBe(true);
    const [delivery] = body.deliveries;
    expect(delivery.subscriber).toBe("selfplay_watch");
    expect(delivery.history.map((s: any) => s.kind)).toEqual([
      "claimed",
      "retry_scheduled",
      "claimed",
      "dead_lettered",
      "fenced",
    ]);
    expect(delivery.history[1]).toMatchObject({ attempt: 1, delayMs: 250 });
    expect(delivery.history[1].error.message).toContain("disk full");

    const page = await (await dash(new Request(`http://dash.test/events/${failing.id}`))).text();
    const table = page.slice(page.indexOf('class="data timeline"'), page.indexOf("</table>"));
    const rows = table.split('<tr data-kind="').slice(1);
    expect(rows.map((r) => r.slice(0, r.indexOf('"')))).toEqual([
      "claimed",
      "retry_scheduled",
      "claimed",
      "dead_lettered",
      "fenced",
    ]);
    // The retry: its attempt, its delay and the first line of its error (not the second).
    expect(rows[1]).toContain("retry scheduled");
    expect(rows[1]).toContain("250 ms");
    expect(rows[1]).toContain("disk full");
    expect(rows[1]).not.toContain("while writing");
    expect(rows[3]).toContain("max_attempts");
    // To the millisecond: the steps of one delivery often share a second.
    expect(rows[4]).toContain(">2026-01-31 12:00:00.000Z</time>");
    // Hostile text in a step is escaped.
    expect(rows[4]).toContain("&lt;script&gt;alert(&#39;fenced&#39;)&lt;/script&gt;");
    expect(rows[4]).toContain("&lt;b&gt;worker-9&lt;/b&gt;");
    expect(page).not.toContain("<script>alert");
    expect(page).not.toContain("keeps no delivery history");
  });

  it("says that the transport keeps no history when it has no such capability, and shows attempts and the last error", async () => {
    await using driver = await memory();
    await seed(driver);
    const inspector = driver.inspector();
    const withoutHistory = new Proxy(inspector, {
      get(target, property) {
        if (property === "capabilities") return { ...target.capabilities, history: false };
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    const dash = createDashboard(withoutHistory);
    const failing = (await getJson(dash, "/api/events?type=SELFPLAY_FAILED&limit=1")).body
      .events[0];
    const { body } = await getJson(dash, `/api/events/${failing.id}`);
    expect(body.history).toBe(false);
    const page = await (await dash(new Request(`http://dash.test/events/${failing.id}`))).text();
    expect(page).toContain("The memory transport keeps no delivery history");
    expect(page).toContain("2 attempts started");
    expect(page).toContain("disk full");
    expect(page).not.toContain('class="data timeline"');
  });
});
