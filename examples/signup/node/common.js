// common.js — what the signup services share: where busd is, where they
// keep their state, and a clean stop on SIGTERM/SIGINT (close() lets the
// running handler finish and acknowledges it before saying BYE).
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { connect } from '../../../clients/node/index.js'

export const endpoint = process.env.BUSD_ENDPOINT || 'tcp://127.0.0.1:7472'
export const state = process.env.SIGNUP_STATE || '/tmp/busd-signup-node'
mkdirSync(state, { recursive: true })
export const file = (name) => path.join(state, name)

export function log (who, ...args) {
  console.log(`${who}:`, ...args)
}

// Connect as `name` and stop cleanly on a signal.
export async function service (name) {
  const bus = await connect(endpoint, { name })
  bus.on('reconnect', (info) => log(name, `reconnected (broker ${info.brokerId})`))
  bus.on('error', (err) => log(name, 'error:', err.message))
  const stop = async () => {
    await bus.close()
    process.exit(0)
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  return bus
}
