// vxnetctl endpoint label | labels: operator labels on endpoint names, in the data directory's
// endpoint-labels.json (catalog/operator-labels.ts: lock, atomic replace; vxnetd follows it);
// with --api, a vxnetd's (GET then PUT /api/v1/endpoints/NAME/labels).
import { type LabelEdit, applyLabelEdit, checkEndpointName, labelsOf, parseLabelEdit } from '../catalog/label-rules';
import { apiAuth, apiCall, remoteApi } from './api-client';
import { editLabelsFile, labelsFilePath, readLabelsFile } from '../catalog/operator-labels';
import { type CommandName, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

const describe = (labels: Readonly<Record<string, string>>): string => {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.join(', ') : 'no operator labels';
};

/** Through a vxnetd's API: its labels of NAME read, the edit applied here, the result put back. */
async function remoteLabel(base: string, values: Values, name: string, edit: LabelEdit, ctx: Ctx): Promise<void> {
  const auth = apiAuth(values, ctx.env);
  const path = `/api/v1/endpoints/${encodeURIComponent(name)}/labels`;
  const before = await apiCall<{ labels: Record<string, string> }>(base, auth, 'GET', path);
  const next = labelsOf(applyLabelEdit({ [name]: before.labels }, name, edit), name) ?? {};
  const after = await apiCall<{ labels: Record<string, string> }>(base, auth, 'PUT', path, { labels: next });
  if (ctx.json) writeJson(ctx, { api: base, name, labels: after.labels });
  else ctx.stdout(`endpoint ${name}: ${describe(after.labels)}\n`);
}

async function label(values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  const [rawName, ...assignments] = positionals;
  if (rawName === undefined) throw new UsageError('endpoint label needs the endpoint NAME (see vxnetctl endpoint label --help)');
  const name = checkEndpointName(rawName);
  const edit = parseLabelEdit(assignments, values.remove ?? []);
  const api = remoteApi(values, ctx.env);
  if (api !== undefined) return remoteLabel(api, values, name, edit, ctx);
  const file = labelsFilePath(ctx.dataDir);
  const labels = await editLabelsFile(file, name, edit);
  if (ctx.json) {
    writeJson(ctx, { file, name, labels });
    return;
  }
  ctx.stdout(`endpoint ${name}: ${describe(labels)}\n`);
}

async function list(values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  const api = remoteApi(values, ctx.env);
  if (api !== undefined) {
    if (positionals[0] === undefined) throw new UsageError('endpoint labels with --api needs a NAME (the API answers per endpoint; GET /api/v1/endpoints lists every endpoint with its labels)');
    const name = checkEndpointName(positionals[0]);
    const r = await apiCall<{ labels: Record<string, string> }>(api, apiAuth(values, ctx.env), 'GET', `/api/v1/endpoints/${encodeURIComponent(name)}/labels`);
    if (ctx.json) writeJson(ctx, { api, name, labels: r.labels });
    else ctx.stdout(`endpoint ${name}: ${describe(r.labels)}\n`);
    return;
  }
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
  return list(values, positionals, ctx);
}
