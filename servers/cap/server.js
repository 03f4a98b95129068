// Boots the CAP service the way erpbridge's tests need it:
//  - listens on 127.0.0.1 only (cds-serve alone binds every interface);
//  - serves OData V2 through the adapter, behind a CSRF check that behaves like SAP Gateway:
//    a GET with `X-CSRF-Token: Fetch` returns a token bound to a cookie session; a write without
//    a valid token for its session gets 403 with `x-csrf-token: Required`;
//  - POST /-/csrf/expire forgets every token, as a Gateway session timeout would;
//  - ERPBRIDGE_CAP_PAGE_MAX caps a page (server-driven paging: @odata.nextLink / d.__next).
const cds = require('@sap/cds')
const crypto = require('node:crypto')
const http = require('node:http')
const cov2ap = require('@cap-js-community/odata-v2-adapter')

const HOST = '127.0.0.1'
const PORT = Number(process.env.PORT || 4004)
const PAGE_MAX = Number(process.env.ERPBRIDGE_CAP_PAGE_MAX || 1000)
const V2_PATH = '/odata/v2'
const SESSION_COOKIE = 'SAP_SESSIONID_S4H_100'
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'MERGE', 'DELETE'])

cds.env.query = cds.env.query || {}
cds.env.query.limit = { ...(cds.env.query.limit || {}), default: PAGE_MAX, max: PAGE_MAX }

const tokens = new Map() // session id -> CSRF token

function sessionOf(req) {
  const cookies = req.headers.cookie || ''
  const found = cookies.split(';').map((c) => c.trim().split('=')).find(([k]) => k === SESSION_COOKIE)
  return found ? found[1] : undefined
}

function csrf(req, res, next) {
  if (req.method === 'GET' && String(req.headers['x-csrf-token'] || '').toLowerCase() === 'fetch') {
    let session = sessionOf(req)
    if (!session || !tokens.has(session)) {
      session = crypto.randomBytes(16).toString('hex')
      res.append('Set-Cookie', `${SESSION_COOKIE}=${session}; Path=/; HttpOnly`)
    }
    const token = crypto.randomBytes(18).toString('base64')
    tokens.set(session, token)
    res.set('x-csrf-token', token)
    return next()
  }
  if (WRITES.has(req.method)) {
    const session = sessionOf(req)
    const sent = req.headers['x-csrf-token']
    if (!session || !sent || tokens.get(session) !== sent) {
      res.status(403).set('x-csrf-token', 'Required').type('text/plain')
      return res.send('CSRF token validation failed')
    }
  }
  return next()
}

cds.on('bootstrap', (app) => {
  app.post('/-/csrf/expire', (_req, res) => {
    tokens.clear()
    res.status(204).end()
  })
  app.use(V2_PATH, csrf)
  app.use(cov2ap({ target: `http://${HOST}:${PORT}`, path: V2_PATH.slice(1) }))
})

module.exports = (options) => {
  const app = require('express')()
  app.listen = function listen(port, ...rest) {
    return http.createServer(this).listen(port, HOST, ...rest)
  }
  return cds.server({ ...options, app, port: PORT })
}
