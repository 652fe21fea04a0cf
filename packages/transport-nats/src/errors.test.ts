import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { SwitchyardError } from "@switchyard/event-schema";
import { TransportClosedError as ContractClosedError } from "@switchyard/transport";
import { describe, expect, it } from "vitest";
import {
  JetStreamUnavailableError,
  NatsAuthError,
  NatsConnectionError,
  NatsOptionsError,
  NatsPublishError,
  TransportClosedError,
  defaultNatsTransportOptions,
  natsTransport,
  toNatsError,
} from "./index";

const servers = ["nats://127.0.0.1:4222"];

describe("error mapping", () => {
  it("reports a refused connection as NatsConnectionError naming the URL and what to do", () => {
    const cause = new errors.ConnectionError("connection refused");
    const error = toNatsError(cause, { servers, phase: "connect" });
    expect(error).toBeInstanceOf(NatsConnectionError);
    expect(error).toMatchObject({ code: "NATS_UNREACHABLE", servers, cause });
    expect((error as Error).message).toContain("nats://127.0.0.1:4222");
    expect((error as Error).message).toContain("nats-server -js");
  });

  it("reports a connect timeout as NatsConnectionError", () => {
    const error = toNatsError(new errors.TimeoutError(), { servers, phase: "connect" });
    expect(error).toBeInstanceOf(NatsConnectionError);
  });

  it("leaves a request timeout alone (it is not a connection failure)", () => {
    const cause = new errors.TimeoutError();
    expect(toNatsError(cause, { servers, phase: "request" })).toBe(cause);
  });

  it("reports rejected credentials as NatsAuthError", () => {
    const error = toNatsError(new errors.AuthorizationError("Authorization Violation"), {
      servers,
      phase: "connect",
    });
    expect(error).toBeInstanceOf(NatsAuthError);
    expect(error).toMatchObject({ code: "NATS_AUTH_FAILED" });
    expect((error as Error).message).toMatch(/user, pass/);
  });

  it("reports a permission violation as NatsAuthError with its own code", () => {
    const cause = new errors.PermissionViolationError(
      "Permissions Violation for Publish",
      "publish",
      "$JS.API.STREAM.INFO.X",
    );
    expect(toNatsError(cause, { servers, phase: "request" })).toMatchObject({
      name: "NatsAuthError",
      code: "NATS_PERMISSION_DENIED",
    });
  });

  it("reports a closed connection as NatsConnectionError", () => {
    const error = toNatsError(new errors.ClosedConnectionError(), { servers, phase: "request" });
    expect(error).toBeInstanceOf(NatsConnectionError);
    expect((error as Error).message).toContain("is closed");
  });

  it("reports a server without JetStream as JetStreamUnavailableError", () => {
    const cause = Object.assign(new Error("jetstream not enabled"), {
      name: "JetStreamNotEnabled",
    });
    const error = toNatsError(cause, { servers, phase: "connect" });
    expect(error).toBeInstanceOf(JetStreamUnavailableError);
    expect((error as Error).message).toContain("-js");
  });

  it("passes Switchyard errors and unknown errors through", () => {
    const own = new NatsPublishError(1, 2);
    expect(toNatsError(own, { servers, phase: "request" })).toBe(own);
    const api = new JetStreamApiError({ code: 500, err_code: 10999, description: "odd" });
    expect(toNatsError(api, { servers, phase: "request" })).toBe(api);
  });

  it("makes every error a SwitchyardError with a stable code", () => {
    expect(new NatsPublishError(3, 10)).toMatchObject({ code: "NATS_PUBLISH_FAILED", stored: 3 });
    expect(new NatsPublishError(3, 10).message).toContain("again");
    const closed = new TransportClosedError("NATS transport on stream S");
    expect(TransportClosedError).toBe(ContractClosedError);
    expect(closed.code).toBe("CLOSED");
    expect(closed).toBeInstanceOf(SwitchyardError);
    expect(closed.code).toBe("CLOSED");
  });
});

describe("options", () => {
  it.each([
    [{ stream: "a.b" }, "stream"],
    [{ prefix: "a.*" }, "prefix"],
    [{ replicas: 0 }, "replicas"],
    [{ storage: "disk" }, "storage"],
    [{ retention: "workqueue" }, "retention"],
    [{ duplicateWindowMs: 0 }, "duplicateWindowMs"],
    [{ pullExpiresMs: 500 }, "pullExpiresMs"],
    [{ servers: [] }, "servers"],
    [{ maxAgeMs: 1_000, duplicateWindowMs: 2_000 }, "duplicateWindowMs"],
    [{ ephemeralInactiveMs: 1_000 }, "ephemeralInactiveMs"],
  ])("rejects %j naming the option", (options, option) => {
    let error: unknown;
    try {
      natsTransport(options as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NatsOptionsError);
    expect(error).toMatchObject({ option, code: "NATS_INVALID_OPTION" });
  });

  it("documents its defaults", () => {
    expect(defaultNatsTransportOptions).toMatchObject({
      stream: "SWITCHYARD",
      prefix: "switchyard.events",
      replicas: 1,
      storage: "file",
      duplicateWindowMs: 120_000,
    });
  });

  it("does not connect until first used", async () => {
    const transport = natsTransport({ servers: "nats://127.0.0.1:1" });
    await transport.close();
    await expect(transport.publish([])).rejects.toBeInstanceOf(TransportClosedError);
  });
});
