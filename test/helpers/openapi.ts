// A small OpenAPI 3.0 schema checker for tests (no validator library is installed): $ref,
// allOf, oneOf, type, nullable, enum, required, properties, items, additionalProperties,
// pattern, format date-time. Returns the problems found, as "path: what" lines; [] is valid.
type Schema = Record<string, unknown>;

export interface Doc { components: { schemas: Record<string, Schema> }; paths: Record<string, Record<string, unknown>> }

function resolve(doc: Doc, s: Schema): Schema {
  const ref = s.$ref;
  if (typeof ref !== 'string') return s;
  const name = ref.replace('#/components/schemas/', '');
  const target = doc.components.schemas[name];
  if (!target) throw new Error(`unknown $ref ${ref}`);
  return { ...resolve(doc, target), ...(s.nullable ? { nullable: true } : {}) };
}

export function validate(doc: Doc, schema: Schema, value: unknown, at = '$'): string[] {
  const s = resolve(doc, schema);
  if (value === null) return s.nullable ? [] : [`${at}: null where ${JSON.stringify(s.type ?? 'a value')} is required`];
  if (Array.isArray(s.allOf)) return (s.allOf as Schema[]).flatMap((x) => validate(doc, x, value, at));
  if (Array.isArray(s.oneOf)) {
    const ok = (s.oneOf as Schema[]).filter((x) => validate(doc, x, value, at).length === 0).length;
    return ok >= 1 ? [] : [`${at}: matches none of oneOf`];
  }
  const out: string[] = [];
  const type = s.type as string | undefined;
  const is = (t: string): boolean => {
    switch (t) {
      case 'object': return typeof value === 'object' && !Array.isArray(value);
      case 'array': return Array.isArray(value);
      case 'string': return typeof value === 'string';
      case 'integer': return Number.isInteger(value);
      case 'number': return typeof value === 'number';
      case 'boolean': return typeof value === 'boolean';
      default: return true;
    }
  };
  if (type && !is(type)) return [`${at}: ${JSON.stringify(value)?.slice(0, 60)} is not ${type}`];
  if (Array.isArray(s.enum) && !s.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (typeof s.pattern === 'string' && typeof value === 'string' && !new RegExp(s.pattern).test(value)) out.push(`${at}: ${JSON.stringify(value)} does not match ${s.pattern}`);
  if (s.format === 'date-time' && typeof value === 'string' && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value)) out.push(`${at}: ${value} is not an ISO date-time`);
  if (type === 'array' && s.items) (value as unknown[]).forEach((v, i) => out.push(...validate(doc, s.items as Schema, v, `${at}[${i}]`)));
  if (type === 'object') {
    const o = value as Record<string, unknown>;
    for (const k of (s.required as string[] | undefined) ?? []) if (!(k in o)) out.push(`${at}: missing ${k}`);
    const props = (s.properties as Record<string, Schema> | undefined) ?? {};
    for (const [k, v] of Object.entries(o)) {
      if (props[k]) out.push(...validate(doc, props[k], v, `${at}.${k}`));
      else if (s.additionalProperties && typeof s.additionalProperties === 'object') out.push(...validate(doc, s.additionalProperties as Schema, v, `${at}.${k}`));
    }
  }
  return out;
}

/** The 200 answer's schema of a GET (or other method) of a documented path. */
export function responseSchema(doc: Doc, path: string, method = 'get', status = '200'): Schema {
  const op = doc.paths[path]?.[method] as { responses?: Record<string, { content?: Record<string, { schema: Schema }> }> } | undefined;
  const schema = op?.responses?.[status]?.content?.['application/json']?.schema;
  if (!schema) throw new Error(`no ${status} JSON schema for ${method.toUpperCase()} ${path}`);
  return schema;
}
