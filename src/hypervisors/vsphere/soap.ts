// vim25 request encoding. Every value that reaches a request goes through `escapeXml`: moids are
// opaque strings that may hold `<`, `&`, `/` or `@` (vcsim's view moids embed the session key,
// its datastore moids a path: NOTES "SOAP gotchas"), and names, extraConfig values and user-data
// come from users. Fragments are `Xml` objects, so a raw string can never be spliced in unescaped.

import { VIM25, XSD, XSI } from './xml.js';

/** A well-formed XML fragment; only the builders below make one. */
export class Xml {
  readonly #text: string;
  private constructor(text: string) {
    this.#text = text;
  }
  static trusted(text: string): Xml {
    return new Xml(text);
  }
  toString(): string {
    return this.#text;
  }
}

/** A ManagedObjectReference: `type` selects the class, `value` is opaque. */
export interface MoRef {
  type: string;
  value: string;
}

export type Content = string | number | boolean | bigint | Xml | readonly (Xml | undefined)[] | undefined;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

// Characters XML 1.0 cannot carry at all, even escaped.
// eslint-disable-next-line no-control-regex
const INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

export function escapeXml(value: string): string {
  return value.replace(INVALID, '\uFFFD').replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function render(content: Content): string {
  if (content === undefined) return '';
  if (content instanceof Xml) return content.toString();
  if (Array.isArray(content)) return content.map((item: Xml | undefined) => (item === undefined ? '' : item.toString())).join('');
  return escapeXml(String(content));
}

/**
 * `<name attrs>content</name>`; undefined content leaves the element out entirely (vim25 reads a
 * missing optional element as unset, an empty one as an empty value).
 */
export function el(name: string, content: Content, attributes: Record<string, string | undefined> = {}): Xml {
  if (content === undefined) return Xml.trusted('');
  if (!NAME.test(name)) throw new Error(`invalid element name ${name}`);
  const attrs = Object.entries(attributes)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => ` ${key}="${escapeXml(value)}"`)
    .join('');
  return Xml.trusted(`<${name}${attrs}>${render(content)}</${name}>`);
}

/** An element of a polymorphic slot: vim25 needs `xsi:type` there (selectSet, extraConfig, device specs). */
export function typed(name: string, type: string, content: Content): Xml {
  return el(name, content ?? [], { 'xsi:type': type });
}

export function moref(name: string, ref: MoRef | undefined): Xml {
  if (ref === undefined) return Xml.trusted('');
  return el(name, ref.value, { type: ref.type });
}

/** An OptionValue with a string value (extraConfig entries). */
export function optionValue(name: string, key: string, value: string): Xml {
  return typed(name, 'OptionValue', [el('key', key), el('value', value, { 'xsi:type': 'xsd:string' })]);
}

export function fragments(...items: (Xml | undefined)[]): Xml {
  return Xml.trusted(items.map((item) => (item === undefined ? '' : item.toString())).join(''));
}

/** A SOAP 1.1 request whose body is the vim25 method element. */
export function envelope(method: string, params: readonly (Xml | undefined)[]): string {
  if (!NAME.test(method)) throw new Error(`invalid method name ${method}`);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>` +
    `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="${XSD}" xmlns:xsi="${XSI}">` +
    `<soapenv:Body><${method} xmlns="${VIM25}">${render(params)}</${method}></soapenv:Body></soapenv:Envelope>`
  );
}
