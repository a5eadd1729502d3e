// The very first `npm start` on a fresh machine, with every default: the germline gets its opening
// balance, trains its first checkpoint, tags it as today's gpc checkpoint and serves it publicly, so a
// person with no account can talk to it on /zookeeper and through /v1, and the operator sees what
// that instance costs in the ledger, to the second.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cli, startUp, upEnvironment } from '../helpers/computatrum-up';
import { eventually } from '../helpers/eventually';
import { uniqueName } from '../helpers/temporal';

// Two starts of the whole stack, a first training run and a model server; about a minute alone here.
jest.setTimeout(300_000);

test('a fresh npm start: opening balance, a first checkpoint trained and tagged today, served publicly to anyone, its cost in the ledger to the second', async () => {
  const germline = uniqueName('first');
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-first-')), germline);
  const platform = `http://127.0.0.1:${env.PLATFORM_PORT}`;
  const repository = `germline/${germline}`;

  const up = await startUp(env);
  try {
    // The first run trains from scratch, paid from the opening balance, then today is tagged.
    const run = await eventually(
      async () => {
        const runs = JSON.parse((await cli(env, 'runs', '--json')).stdout) as Array<{ id: string; state: string }>;
        const genesis = runs.find((r) => r.id.startsWith('genesis-'));
        return genesis && ['succeeded', 'failed', 'refused'].includes(genesis.state) ? genesis : undefined;
      },
      'the first training run to end',
      120_000,
    );
    expect(run.state).toBe('succeeded');
    const gpc = await eventually(
      async () => {
        const { tags } = JSON.parse((await cli(env, 'tags', repository, '--json')).stdout) as {
          tags: Array<{ tag: string; nickname: string | null }>;
        };
        return tags.find((t) => /^gpc-\d{4}-\d{2}-\d{2}$/.test(t.tag) && t.nickname);
      },
      "today's gpc tag",
      60_000,
    );

    // The germline's public instance of that tag becomes ready; anyone sees it on the zookeeper.
    const instanceId = `${germline}-${gpc.tag}`.slice(0, 63).replace(/-+$/, '');
    await eventually(
      async () => ((await cli(env, 'instances')).stdout.match(new RegExp(`${instanceId}\\s+ready`)) ? true : undefined),
      `${instanceId} to be ready`,
      90_000,
    );
    const zookeeper = await (await fetch(`${platform}/zookeeper`)).text();
    expect(zookeeper).toContain(instanceId);
    expect(zookeeper).toContain(`${repository}:${gpc.tag}`);

    // A person with no account talks to it through the gateway, by its id and by its image.
    for (const model of [instanceId, `${repository}:${gpc.tag}`]) {
      const answer = await fetch(`${platform}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'The ' }], max_tokens: 16, seed: 1 }),
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-computatrum-interaction')).toBeTruthy();
      const body = (await answer.json()) as {
        choices: Array<{ message: { content: string } }>;
        usage: { completion_tokens: number };
      };
      expect(body.choices[0]!.message.content.length).toBeGreaterThan(0);
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
    }

    // The operator stops it; the ledger shows its lease reserved and settled, to the second.
    const stopped = await cli(env, 'stop', instanceId, '--reason', 'first-start test');
    expect(stopped.code).toBe(0);
    const [, cost, seconds] = /cost\s+(\d+\.\d\d) USD for (\d+) s/.exec(stopped.stdout)!;
    expect(Number(seconds)).toBeGreaterThan(0);
    const ledger = (await cli(env, 'ledger', '--limit', '100')).stdout;
    expect(ledger).toMatch(/deposit\s+10\.00 USD\s+opening-balance/);
    expect(ledger).toMatch(
      new RegExp(`settle\\s+\\d+\\.\\d\\d USD\\s+\\d+\\.\\d\\d USD\\s+\\S+\\s+training/${run.id}`),
    );
    expect(ledger).toMatch(
      new RegExp(
        `settle\\s+\\d+\\.\\d\\d USD\\s+${cost!.replace('.', '\\.')} USD\\s+\\S+\\s+instance/${instanceId}/lease/1`,
      ),
    );
    expect((await cli(env, 'reconcile')).stdout).toContain('journal and workflow agree');
  } finally {
    up.process.kill('SIGINT');
    expect(await up.exited).toBe(0);
  }

  // A second start gives nothing twice: no second opening deposit, no second first run.
  const again = await startUp(env);
  try {
    const ledger = (await cli(env, 'ledger', '--limit', '500')).stdout;
    expect(ledger.match(/opening-balance/g)).toHaveLength(1);
    const runs = JSON.parse((await cli(env, 'runs', '--json')).stdout) as Array<{ id: string }>;
    expect(runs.filter((r) => r.id.startsWith('genesis-'))).toHaveLength(1);
  } finally {
    again.process.kill('SIGINT');
    expect(await again.exited).toBe(0);
  }
});
