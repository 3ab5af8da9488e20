// examples/signup/node/run.sh end to end: the Node.js signup services with
// retries, dead letters and a replay, against this tree's busd.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { BUSD_BIN, clientDir, freePort } from './helpers.js'

test('examples/signup/node/run.sh', { timeout: 300000 }, async () => {
  const state = mkdtempSync(path.join(tmpdir(), 'busd-signup-node-'))
  try {
    const port = await freePort()
    const script = path.resolve(clientDir, '../../examples/signup/node/run.sh')
    const { code, output } = await new Promise((resolve, reject) => {
      const proc = spawn('bash', [script], {
        env: { ...process.env, BUSD_BIN, SIGNUP_PORT: String(port), SIGNUP_STATE: state },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let output = ''
      proc.stdout.on('data', (d) => { output += d })
      proc.stderr.on('data', (d) => { output += d })
      proc.on('error', reject)
      proc.on('exit', (code) => resolve({ code, output }))
    })
    assert.equal(code, 0, output)
    assert.match(output, /attempt 2: sent to alice@example\.com/)
    assert.match(output, /signup-4 +user\.created +attempts 1 +crm +HTTP 400: name must be ASCII/)
    assert.match(output, /"name":"Zoë"/)
  } finally {
    rmSync(state, { recursive: true, force: true })
  }
})
