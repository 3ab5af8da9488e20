// crm.js — records each new user in the CRM. It has the bug the example
// needs: a name that is not plain ASCII is refused as a final answer
// (DeadLetter, not a retry), so the event waits in the dead-letter queue
// until someone fixes the CRM (CRM_FIXED=1 here) and replays it (`node
// dlq.js replay crm`). Other failures are retried up to max_deliver 3.
import { appendFileSync } from 'node:fs'
import { DeadLetter } from '../../../clients/node/index.js'
import { service, file, log } from './common.js'

const bus = await service('crm')
const fixed = process.env.CRM_FIXED === '1'
const stored = new Set()

await bus.subscribe('user.created', async (event) => {
  const user = event.json()
  if (stored.has(event.msgId)) return // idempotent on msgId
  // eslint-disable-next-line no-control-regex
  if (!fixed && !/^[\x00-\x7f]*$/.test(user.name ?? '')) {
    log('crm', `${event.msgId}: refused, name must be ASCII`)
    throw new DeadLetter('HTTP 400: name must be ASCII')
  }
  appendFileSync(file('contacts.jsonl'), JSON.stringify({ msgId: event.msgId, ...user }) + '\n')
  stored.add(event.msgId)
  log('crm', `${event.msgId}: stored contact ${user.name}`)
}, { group: 'crm', max_deliver: 3 })
log('crm', fixed ? 'ready (fixed: any name)' : 'ready')
