// vim25 responses → a small namespace-aware element tree. fast-xml-parser does the tokenizing;
// namespaces are resolved here, because vcsim (Go's encoder) writes `xsi:type` under whatever
// prefix it declared on the spot (`XMLSchema-instance:type`, NOTES "SOAP gotchas"), sometimes on
// an ancestor: only the namespace URI says what an attribute is.

import { XMLParser } from 'fast-xml-parser';

export const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
export const XSD = 'http://www.w3.org/2001/XMLSchema';
export const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
export const VIM25 = 'urn:vim25';

export interface XmlType {
  ns: string | undefined;
  name: string;
}

export interface XmlElement {
  /** Local name, without prefix. */
  name: string;
  ns: string | undefined;
  /** Attributes without a namespace prefix (`type` of a ManagedObjectReference). */
  attributes: Readonly<Record<string, string>>;
  /** The `xsi:type`, resolved by namespace URI. */
  type: XmlType | undefined;
  text: string;
  children: XmlElement[];
}

type Ordered = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  // Go's encoder writes `"` as `&#34;`: numeric character references must be decoded too.
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

export class XmlParseError extends Error {}

function split(qualified: string): { prefix: string | undefined; local: string } {
  const colon = qualified.indexOf(':');
  return colon < 0 ? { prefix: undefined, local: qualified } : { prefix: qualified.slice(0, colon), local: qualified.slice(colon + 1) };
}

function convert(node: Ordered, scope: ReadonlyMap<string, string>): XmlElement | undefined {
  const tag = Object.keys(node).find((key) => key !== ':@' && key !== '#text');
  if (tag === undefined) return undefined;
  const raw = (node[':@'] ?? {}) as Record<string, unknown>;
  const attrs: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) attrs[key] = String(value);

  let local = scope;
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'xmlns' || key.startsWith('xmlns:')) {
      if (local === scope) local = new Map(scope);
      (local as Map<string, string>).set(key === 'xmlns' ? '' : key.slice(6), value);
    }
  }
  const resolve = (prefix: string | undefined): string | undefined => local.get(prefix ?? '');

  const attributes: Record<string, string> = {};
  let type: XmlType | undefined;
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'xmlns' || key.startsWith('xmlns:')) continue;
    const { prefix, local: name } = split(key);
    if (prefix === undefined) {
      attributes[name] = value;
    } else if (name === 'type' && resolve(prefix) === XSI) {
      const typeName = split(value);
      type = { ns: resolve(typeName.prefix), name: typeName.local };
    }
  }

  const { prefix, local: name } = split(tag);
  const content = node[tag];
  const children: XmlElement[] = [];
  let text = '';
  if (Array.isArray(content)) {
    for (const item of content as Ordered[]) {
      if ('#text' in item) text += String(item['#text']);
      else {
        const child = convert(item, local);
        if (child !== undefined) children.push(child);
      }
    }
  }
  return { name, ns: resolve(prefix), attributes, type, text, children };
}

/** The document element of `text`. Throws XmlParseError on anything that is not XML. */
export function parseXml(text: string): XmlElement {
  let parsed: unknown;
  try {
    parsed = parser.parse(text, true);
  } catch (error) {
    throw new XmlParseError(`not XML: ${error instanceof Error ? error.message.split('\n')[0] : 'parse error'}`);
  }
  if (!Array.isArray(parsed)) throw new XmlParseError('not XML');
  for (const node of parsed as Ordered[]) {
    const element = convert(node, new Map());
    if (element !== undefined) return element;
  }
  throw new XmlParseError('no document element');
}

export function child(element: XmlElement | undefined, name: string): XmlElement | undefined {
  return element?.children.find((candidate) => candidate.name === name);
}

export function childrenNamed(element: XmlElement | undefined, name: string): XmlElement[] {
  return element?.children.filter((candidate) => candidate.name === name) ?? [];
}

/** Text of a descendant along `path` (`info.state` style names), or undefined when absent. */
export function textAt(element: XmlElement | undefined, ...path: string[]): string | undefined {
  let current = element;
  for (const name of path) current = child(current, name);
  return current?.text;
}

export function intAt(element: XmlElement | undefined, ...path: string[]): number | undefined {
  const text = textAt(element, ...path);
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

export function boolAt(element: XmlElement | undefined, ...path: string[]): boolean | undefined {
  const text = textAt(element, ...path);
  return text === undefined ? undefined : text === 'true' || text === '1';
}

/** The vim type name of an element: its `xsi:type` when it carries one. */
export function typeName(element: XmlElement): string | undefined {
  return element.type?.name;
}
