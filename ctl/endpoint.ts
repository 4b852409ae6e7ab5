// vxnetctl endpoint label | labels: operator labels on endpoint names, in the data directory's
// endpoint-labels.json (catalog/operator-labels.ts: lock, atomic replace; vxnetd follows it).
import { checkEndpointName, labelsOf, parseLabelEdit } from '../catalog/label-rules';
import { editLabelsFile, labelsFilePath, readLabelsFile } from '../catalog/operator-labels';
import { type CommandName, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

const describe = (labels: Readonly<Record<string, string>>): string => {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.join(', ') : 'no operator labels';
};

async function label(values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  const [rawName, ...assignments] = positionals;
  if (rawName === undefined) throw new UsageError('endpoint label needs the endpoint NAME (see vxnetctl endpoint label --help)');
  const name = checkEndpointName(rawName);
  const edit = parseLabelEdit(assignments, values.remove ?? []);
  const file = labelsFilePath(ctx.dataDir);
  const labels = await editLabelsFile(file, name, edit);
  if (ctx.json) {
    writeJson(ctx, { file, name, labels });
    return;
  }
  ctx.stdout(`endpoint ${name}: ${describe(labels)}\n`);
}

function list(positionals: readonly string[], ctx: Ctx): void {
  const file = labelsFilePath(ctx.dataDir);
  const all = readLabelsFile(file);
  const only = positionals[0] !== undefined ? checkEndpointName(positionals[0]) : undefined;
  if (only !== undefined) {
    const labels = labelsOf(all, only) ?? {};
    if (ctx.json) writeJson(ctx, { file, name: only, labels });
    else ctx.stdout(`endpoint ${only}: ${describe(labels)}\n`);
    return;
  }
  if (ctx.json) {
    writeJson(ctx, { file, endpoints: all });
    return;
  }
  const rows = Object.entries(all).flatMap(([name, labels]) => Object.entries(labels).map(([k, v]) => [name, k, v]));
  if (rows.length === 0) {
    ctx.stdout(`no operator labels (${file})\n`);
    return;
  }
  ctx.stdout(renderTable([{ header: 'ENDPOINT' }, { header: 'KEY' }, { header: 'VALUE' }], rows));
}

export async function runEndpoint(command: CommandName, values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  if (command === 'endpoint label') return label(values, positionals, ctx);
  return list(positionals, ctx);
}
