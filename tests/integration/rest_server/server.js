// json-server 0.17 behind what a real API gateway adds, for erpbridge's REST transport tests.
//
//   node server.js CONFIG.json
//
// CONFIG (written by scripts/restapi.sh): ports, secrets and certificate files. Everything
// listens on 127.0.0.1 only:
//
//   http://127.0.0.1:PORT          the API over plain HTTP
//   https://127.0.0.1:HTTPS_PORT   the same API over HTTPS; a client certificate signed by the
//                                  test CA is required (mutual TLS)
//   http://127.0.0.1:OAUTH_PORT    oauth2-mock-server: /token (client credentials), /jwks
//
// API paths: /<auth>/api/<collection>[/<id>]   json-server (filters, _page/_limit, _start,
//                                               <field>_gte, Link and X-Total-Count headers)
//            /<auth>/paged/<collection>         cursor pagination: {data, meta.next_cursor,
//                                               links.next}; ?limit=&cursor=&changed_since=
// where <auth> is open (none), key (X-API-Key header or api_key query), basic, or jwt (a bearer
// JWT issued by the OAuth server, checked against its JWKS). Every write stamps updatedAt.
//
// Test controls (no auth, never part of a real API):
//   PUT  /_admin/collections/<name>   replace (or create) a collection: body = array of items
//   POST /_admin/faults               {prefix, status, times, retry_after?, html?}: the next
//                                     `times` requests under `prefix` get that answer
//   POST /_admin/revoke               {client_id}: its tokens issued so far are refused (401)
//   GET  /_admin/stats                {token_requests: {client_id: n}, requests: {path: n}}
//   GET  /_admin/health               "ok"

import fs from "node:fs";
import https from "node:https";

import * as jose from "jose";
import jsonServer from "json-server";
import { OAuth2Server } from "oauth2-mock-server";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const HOST = "127.0.0.1";

// -- OAuth 2.0 authorisation server ---------------------------------------------------------

// Client ids share one secret; their token lifetimes differ, to test caching and renewal.
//   <client_id>        tokens live 1 hour
//   <client_id>-short  tokens live 2 s, and the response says so (renewed on expiry)
// POST /_admin/revoke {client_id} revokes a client's tokens issued so far (answered with 401
// from then on, as after a key rotation), to test renewal after a 401.
const clients = {
  [config.client_id]: { ttl: 3600 },
  [`${config.client_id}-short`]: { ttl: 2 },
};
const generations = {};
const tokenRequests = {};
const requestCounts = {};

function clientOf(req) {
  const header = req.headers.authorization || "";
  if (header.startsWith("Basic ")) {
    const [id, ...rest] = Buffer.from(header.slice(6), "base64").toString("utf8").split(":");
    return { id: decodeURIComponent(id), secret: decodeURIComponent(rest.join(":")) };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
}

const oauth = new OAuth2Server();
await oauth.issuer.keys.generate("RS256");
oauth.service.on("beforeTokenSigning", (token, req) => {
  const client = clientOf(req);
  const settings = clients[client.id];
  if (settings) {
    token.payload.exp = token.payload.iat + settings.ttl;
    token.payload.sub = client.id;
    token.payload.client_id = client.id;
    token.payload.generation = generations[client.id] || 0;
  }
});
oauth.service.on("beforeResponse", (response, req) => {
  const client = clientOf(req);
  tokenRequests[client.id] = (tokenRequests[client.id] || 0) + 1;
  const settings = clients[client.id];
  if (!settings || client.secret !== config.client_secret) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "unknown client or wrong secret" };
    return;
  }
  response.body.expires_in = settings.ttl;
});
await oauth.start(config.oauth_port, HOST);
// The issuer names 127.0.0.1 (not localhost, which may resolve to ::1 where nothing listens).
oauth.issuer.url = `http://${HOST}:${config.oauth_port}`;
const issuer = oauth.issuer.url;
const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));

// -- the gateway ----------------------------------------------------------------------------

function refuse(res, scheme, message) {
  res.set("WWW-Authenticate", `${scheme} realm="erpbridge-test"`);
  res.status(401).json({ error: "unauthorized", message });
}

const authenticators = {
  open: async (_req) => null,
  key: async (req) => {
    const key = req.get("X-API-Key") ?? req.query.api_key;
    delete req.query.api_key; // json-server would take it for a filter
    return key === config.api_key ? null : "missing or wrong API key";
  },
  basic: async (req) => {
    const header = req.get("Authorization") || "";
    if (!header.startsWith("Basic ")) return "basic credentials required";
    const [user, ...rest] = Buffer.from(header.slice(6), "base64").toString("utf8").split(":");
    const ok = user === config.username && rest.join(":") === config.password;
    return ok ? null : "wrong user name or password";
  },
  jwt: async (req) => {
    const header = req.get("Authorization") || "";
    if (!header.startsWith("Bearer ")) return "bearer token required";
    try {
      const { payload } = await jose.jwtVerify(header.slice(7), jwks, { issuer });
      if ((payload.generation ?? 0) < (generations[payload.client_id] || 0)) {
        return "invalid token: revoked";
      }
      return null;
    } catch (error) {
      return `invalid token: ${error.code || error.message}`;
    }
  },
};

const faults = [];

function faultFor(path) {
  const index = faults.findIndex((f) => path.startsWith(f.prefix) && f.times > 0);
  if (index < 0) return null;
  const fault = faults[index];
  fault.times -= 1;
  if (fault.times === 0) faults.splice(index, 1);
  return fault;
}

function answerFault(res, fault) {
  if (fault.retry_after !== undefined) res.set("Retry-After", String(fault.retry_after));
  res.status(fault.status);
  if (fault.html) {
    res.type("html").send(
      "<!DOCTYPE html><html><head><title>500 Internal Server Error</title>" +
        "<style>body { font-family: sans-serif; }</style></head><body>" +
        "<h1>Internal Server Error</h1><p>The upstream ERP did not answer &amp; the gateway " +
        "gave up.</p><script>console.log('x')</script></body></html>",
    );
    return;
  }
  res.json({ error: fault.status === 429 ? "rate limited" : "failure", status: fault.status });
}

// One lowdb database for every collection; the json-server router is rebuilt when a collection
// is added, because json-server mounts its routes per collection once.
const seed = jsonServer.router({});
const db = seed.db;
let api = seed;

function stampWrites(req, _res, next) {
  if (["POST", "PUT", "PATCH"].includes(req.method) && req.body && typeof req.body === "object") {
    req.body.updatedAt = new Date().toISOString();
  }
  next();
}

// Cursor pagination, as many SaaS APIs do it: an opaque cursor, the next link in the body.
function paged(req, res) {
  const items = db.get(req.params.name).value();
  if (!Array.isArray(items)) {
    res.status(404).json({ error: `no collection ${req.params.name}` });
    return;
  }
  const limit = Math.max(1, Math.min(parseInt(req.query.limit, 10) || 10, 100));
  let offset = 0;
  if (req.query.cursor) {
    try {
      offset = JSON.parse(Buffer.from(req.query.cursor, "base64url").toString("utf8")).offset;
    } catch {
      res.status(400).json({ error: "malformed cursor" });
      return;
    }
  }
  const since = req.query.changed_since;
  const selected = items
    .filter((item) => !since || (item.updatedAt !== undefined && item.updatedAt >= since))
    .sort((a, b) =>
      a.updatedAt === b.updatedAt
        ? String(a.id).localeCompare(String(b.id))
        : String(a.updatedAt).localeCompare(String(b.updatedAt)),
    );
  const data = selected.slice(offset, offset + limit);
  const more = offset + limit < selected.length;
  const nextCursor = more
    ? Buffer.from(JSON.stringify({ offset: offset + limit })).toString("base64url")
    : null;
  let nextLink = null;
  if (more) {
    const url = new URL(req.originalUrl, `${req.protocol}://${req.get("host")}`);
    url.searchParams.set("cursor", nextCursor);
    nextLink = url.toString();
  }
  res.json({ data, meta: { next_cursor: nextCursor, total: selected.length }, links: { next: nextLink } });
}

const app = jsonServer.create();
app.disable("x-powered-by");
app.use(jsonServer.bodyParser);

app.get("/_admin/health", (_req, res) => res.send("ok"));
app.get("/_admin/stats", (_req, res) =>
  res.json({ token_requests: tokenRequests, requests: requestCounts }),
);
app.put("/_admin/collections/:name", (req, res) => {
  if (!Array.isArray(req.body)) {
    res.status(400).json({ error: "body must be an array" });
    return;
  }
  const isNew = !Array.isArray(db.get(req.params.name).value());
  db.set(req.params.name, req.body).write();
  if (isNew) api = jsonServer.router(db);
  res.json({ name: req.params.name, items: req.body.length });
});
app.post("/_admin/revoke", (req, res) => {
  const id = req.body.client_id;
  generations[id] = (generations[id] || 0) + 1;
  res.json({ client_id: id, generation: generations[id] });
});
app.post("/_admin/faults", (req, res) => {
  const { prefix, status, times } = req.body;
  if (typeof prefix !== "string" || !Number.isInteger(status) || !Number.isInteger(times)) {
    res.status(400).json({ error: "need prefix (string), status and times (integers)" });
    return;
  }
  faults.push({ ...req.body });
  res.json({ armed: faults.length });
});

app.use("/:auth(open|key|basic|jwt)", async (req, res, next) => {
  const auth = req.params.auth;
  const counted = `/${auth}${req.path}`;
  requestCounts[counted] = (requestCounts[counted] || 0) + 1;
  const problem = await authenticators[auth](req);
  if (problem) {
    refuse(res, auth === "basic" ? "Basic" : auth === "jwt" ? "Bearer" : "ApiKey", problem);
    return;
  }
  const fault = faultFor(`/${auth}${req.path}`);
  if (fault) {
    answerFault(res, fault);
    return;
  }
  next();
});
app.get("/:auth(open|key|basic|jwt)/paged/:name", paged);
app.use("/:auth(open|key|basic|jwt)/api", stampWrites, (req, res, next) => api(req, res, next));

const plain = app.listen(config.port, HOST);
const tls = https.createServer(
  {
    key: fs.readFileSync(config.server_key),
    cert: fs.readFileSync(config.server_cert),
    ca: fs.readFileSync(config.ca),
    requestCert: true,
    rejectUnauthorized: true,
  },
  app,
);
tls.listen(config.https_port, HOST);

async function shutdown() {
  plain.close();
  tls.close();
  await oauth.stop();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
console.error(`rest test server: http ${config.port}, https ${config.https_port}, oauth ${config.oauth_port}`);
