/**
 * Failover between endpoints (regions): a closed port and a local node:http server that answers 503
 * stand in for failing regions (they are not FLK), a scripted server for the region that answers.
 */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { buildPCS, endpointsOf, FractalLBAClient, NetworkError, PCSError, ServerError, type PCS, type RetryInfo } from "../src/index";

const DECISION = { accepted: true, escalated: false, reason: "", recomputed_D_hat: 0.857, recomputed_budget: 0.2 };
const UNAVAILABLE = { error: "store_unavailable", detail: "the database is unavailable" };

interface Region {
  url: string;
  /** The raw bodies received, in order. */
  bodies: string[];
}

/** Run servers answering every POST with the given status (503 with Retry-After: 5 for a failing region). */
async function withRegions(statuses: number[], fn: (regions: Region[]) => Promise<void>): Promise<void> {
  const servers: Server[] = [];
  const regions: Region[] = [];
  for (const status of statuses) {
    const region: Region = { url: "", bodies: [] };
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        region.bodies.push(Buffer.concat(chunks).toString("utf8"));
        const headers: Record<string, string> = { "Content-Type": "application/json" };
        if (status === 503) headers["Retry-After"] = "5";
        res.writeHead(status, headers);
        res.end(JSON.stringify(status === 503 ? UNAVAILABLE : DECISION));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    region.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    servers.push(server);
    regions.push(region);
  }
  try {
    await fn(regions);
  } finally {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}

/** The URL of a port nothing listens on (bound, then closed): connections to it are refused. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function samplePCS(epoch = 3): PCS {
  return buildPCS({
    shardID: "shard-ts",
    epoch,
    events: ["a", "b", "c"],
    N_j: { "2": 3, "4": 5, "8": 9, "16": 17, "32": 31 },
    cohStar: 0.73,
    vStar: [0.6, 0.8],
    seed: 42,
    r: 0.87,
  });
}

function client(baseURL: string | string[], maxRetries = 5): { c: FractalLBAClient; sleeps: number[]; retries: RetryInfo[] } {
  const sleeps: number[] = [];
  const retries: RetryInfo[] = [];
  const c = new FractalLBAClient({
    baseURL,
    tenantID: "acme",
    signingKey: "test-secret",
    signingAlg: "hmac",
    maxRetries,
    timeoutMs: 2_000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    onRetry: (info) => retries.push(info),
  });
  return { c, sleeps, retries };
}

test("endpoints come from one URL, a comma-separated string or an array", () => {
  assert.deepEqual(endpointsOf("http://a:1/"), ["http://a:1"]);
  assert.deepEqual(endpointsOf("http://a:1/, https://b:2"), ["http://a:1", "https://b:2"]);
  assert.deepEqual(endpointsOf(["http://a:1", "http://b:2/,http://c:3"]), ["http://a:1", "http://b:2", "http://c:3"]);
  assert.throws(() => endpointsOf(" , "), PCSError);
  assert.throws(() => endpointsOf([]), PCSError);
  assert.throws(() => endpointsOf("http://a:1,ftp://b"), PCSError);
  const c = new FractalLBAClient({ baseURL: "http://a:1,http://b:2" });
  assert.deepEqual(c.endpoints, ["http://a:1", "http://b:2"]);
  assert.equal(c.baseURL, "http://a:1");
});

test("a refused connection moves to the next region, with no backoff, and stays there", async () => {
  const dead = await closedPort();
  await withRegions([200], async ([live]) => {
    const { c, sleeps } = client([dead, (live as Region).url]);
    const first = await c.submitPCS(samplePCS(1));
    const second = await c.submitPCS(samplePCS(2));
    assert.equal(first.status, 200);
    assert.equal(first.attempts, 1);
    assert.equal(second.status, 200);
    assert.equal((live as Region).bodies.length, 2);
    assert.equal(c.baseURL, (live as Region).url); // sticky: the second submission went straight there
    assert.equal(c.failovers, 1);
    assert.deepEqual(sleeps, []);
  });
});

test("submissions in flight together each try every region once", async () => {
  const dead = await closedPort();
  await withRegions([200], async ([live]) => {
    const { c, sleeps } = client([dead, (live as Region).url], 0);
    const results = await Promise.all([1, 2, 3, 4].map((epoch) => c.submitPCS(samplePCS(epoch))));
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(c.baseURL, (live as Region).url);
    assert.deepEqual(sleeps, []);
  });
});

test("a 503 moves to the next region with the same bytes, before any backoff", async () => {
  await withRegions([503, 200], async ([down, live]) => {
    const { c, sleeps, retries } = client(`${(down as Region).url},${(live as Region).url}`);
    const result = await c.submitPCS(samplePCS());
    assert.equal(result.status, 200);
    assert.equal(result.attempts, 1);
    assert.equal((down as Region).bodies.length, 1);
    assert.deepEqual((live as Region).bodies, (down as Region).bodies); // resent byte for byte
    assert.equal(c.baseURL, (live as Region).url);
    assert.deepEqual(sleeps, []);
    assert.deepEqual(retries, []);
  });
});

test("every region failing: the backoff sees the last 503 and its Retry-After, then tries them all again", async () => {
  const dead = await closedPort();
  await withRegions([503], async ([down]) => {
    const { c, sleeps, retries } = client([dead, (down as Region).url], 1);
    await assert.rejects(c.submitPCS(samplePCS()), (err: unknown) => err instanceof ServerError && err.status === 503 && err.retryAfterMs === 5000 && err.attempts === 2);
    assert.deepEqual(
      retries.map((r) => [r.attempt, r.status, r.code, r.retryAfterMs]),
      [[1, 503, "store_unavailable", 5000]],
    );
    assert.ok((sleeps[0] as number) >= 5000);
    assert.equal((down as Region).bodies.length, 2); // one request per try
    assert.equal(c.failovers, 4); // each try went through both
    const attempts = (down as Region).bodies.map((b) => (JSON.parse(b) as PCS).attempt);
    assert.deepEqual(attempts, [1, 2]);
  });
});

test("every region failing with the last one refusing: a NetworkError after the retries", async () => {
  const dead = await closedPort();
  await withRegions([503], async ([down]) => {
    const { c, sleeps, retries } = client([(down as Region).url, dead], 1);
    await assert.rejects(c.submitPCS(samplePCS()), (err: unknown) => err instanceof NetworkError && err.code === "network_error" && err.attempts === 2);
    assert.deepEqual(
      retries.map((r) => [r.status, r.code]),
      [[0, "network_error"]],
    );
    assert.equal(sleeps.length, 1);
    assert.equal((down as Region).bodies.length, 2);
  });
});

test("one endpoint: a 503 goes straight to the backoff, as before", async () => {
  await withRegions([503], async ([down]) => {
    const { c, retries } = client((down as Region).url, 2);
    await assert.rejects(c.submitPCS(samplePCS()), ServerError);
    assert.equal((down as Region).bodies.length, 3);
    assert.equal(retries.length, 2);
    assert.equal(c.failovers, 0);
  });
});
