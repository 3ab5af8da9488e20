// analytics.js — appends every user.* event to a JSONL file. Written as an
// async iterator: `for await` over the subscription, acknowledging each
// event once its line is written (ack: 'explicit'), so a crash between the
// two costs a duplicate line, never a missing one.
import { appendFileSync } from 'node:fs'
import { service, file, log } from './common.js'

const bus = await service('analytics')
const events = bus.subscribe('user.#', { group: 'analytics', ack: 'explicit' })
await events.ready
log('analytics', 'ready')
for await (const event of events) {
  appendFileSync(file('analytics.jsonl'), JSON.stringify({
    topic: event.topic, msg_id: event.msgId, ts_us: String(event.ts), user: event.json(),
  }) + '\n')
  event.ack()
}
