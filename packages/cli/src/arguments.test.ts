import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countOption, positiveIntOption, wholeNumberOf } from "./output";
import { cli, tempDir } from "./test/fixture";

const tmp = tempDir();
afterAll(() => tmp.cleanup());
/** A database that does not exist: a command that got past its arguments says so (or is unhealthy). */
const missing = join(tmp.dir, "nowhere", "coordination.db");

describe("whole-number options", () => {
  // `Number("")` is 0: `--max-pending ""` was a threshold of 0, `--depth ""` a depth of 0.
  it.each([
    [["health", "--max-pending", ""], "--max-pending"],
    [["health", "--max-dlq", " "], "--max-dlq"],
    [["events", "trace", "some-id", "--depth", ""], "--depth"],
    [["events", "list", "--limit", "0x10"], "--limit"],
    [["events", "list", "--limit", "1e1"], "--limit"],
    [["monitor", "failures", "--limit", "2.0"], "--limit"],
    [["queue", "backup", "--keep", "1e1"], "--keep"],
    [["queue", "clear", "--pending", "--keep", "0x2"], "--keep"],
  ])("%j is a usage error naming the option", async (args, option) => {
    const run = await cli([...args, "--db", missing]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`option '${option} <`);
    expect(run.stdout).toBe("");
  });

  it("reads decimal digits only, spaces around them allowed", () => {
    expect(wholeNumberOf(" 12 ")).toBe(12);
    expect(wholeNumberOf("0")).toBe(0);
    for (const text of ["", " ", "0x10", "1e3", "1.0", "-1", "+1", "Infinity", "1_000"])
      expect(wholeNumberOf(text), JSON.stringify(text)).toBeNaN();
    expect(countOption("0")).toBe(0);
    expect(positiveIntOption("7")).toBe(7);
    expect(() => positiveIntOption("99999999999999999999")).toThrow("positive integer");
  });
});

describe("usage errors quoting what was typed", () => {
  const hostile = "x\u001b[2J\u001b]0;owned\u0007\u009b2J";
  // eslint-disable-next-line no-control-regex -- the control characters are what is tested
  const obeyed = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

  it.each([
    [[hostile]],
    [["events", "list", `--${hostile}`]],
    [["events", "list", "--limit", hostile]],
    [["dlq", "list", "--status", hostile]],
  ])("%j shows the control characters escaped, not obeyed", async (args) => {
    const run = await cli([...args, "--db", missing]);
    expect(run.code).toBe(2);
    expect(run.stderr).not.toMatch(obeyed);
    expect(run.stderr).toContain("x\\x1b[2J\\x1b]0;owned\\x07\\x9b2J");
  });
});

describe("empty paths", () => {
  it.each([
    [["events", "list", "--db", ""], {}, /^error: --db: the SQLite file path is empty\.$/m],
    [
      ["events", "list"],
      { SWITCHYARD_DB: " " },
      /^error: \$SWITCHYARD_DB: the SQLite file path is empty\.$/m,
    ],
    [
      ["events", "list"],
      { SWITCHYARD_TRANSPORT: " " },
      /^error: \$SWITCHYARD_TRANSPORT: the target is empty\.$/m,
    ],
    [
      ["events", "list", "--transport", "nats://127.0.0.1:4222/S", "--nats-creds", ""],
      {},
      /^error: --nats-creds: the file path is empty\.$/m,
    ],
    [
      ["events", "list", "--db", missing, "--catalog", ""],
      {},
      /^error: --catalog: the module is empty/m,
    ],
  ] as const)(
    "%j %j is a usage error naming where the empty path came from",
    async (args, env, message) => {
      const run = await cli(args, { env });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    },
  );
});
