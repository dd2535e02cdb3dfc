/**
 * Escaping of text written into XML by the framework (meta fields, payload fields).
 *
 * Exclusive C14N writes `&`, `<`, `>` and `\r` as references, so we escape the same set:
 * text we write is then byte-identical to its canonical form, and `\r` survives the parser's
 * line-end normalisation. Characters that XML 1.0 cannot carry at all (most C0 controls,
 * lone surrogates, U+FFFE/U+FFFF) have no escape; they are reported, never dropped.
 */

// One scan decides whether the slow path is needed at all: most strings need no escaping.
const needsWork = /[&<>\r\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/

/** The first character XML 1.0 cannot represent, as an index, or -1. */
export const findInvalidXmlChar = (text: string): number => {
  if (!needsWork.test(text)) return -1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20) {
      if (c !== 0x09 && c !== 0x0a && c !== 0x0d) return i
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (!(next >= 0xdc00 && next <= 0xdfff)) return i
      i++
    } else if ((c >= 0xdc00 && c <= 0xdfff) || c === 0xfffe || c === 0xffff) {
      return i
    }
  }
  return -1
}

/**
 * Escapes character data. Callers check {@link findInvalidXmlChar} first when the text
 * comes from outside; this function never throws.
 */
export const escapeText = (text: string): string => {
  if (!needsWork.test(text)) return text
  let out = ""
  let last = 0
  for (let i = 0; i < text.length; i++) {
    let rep: string | undefined
    switch (text.charCodeAt(i)) {
      case 0x26:
        rep = "&amp;"
        break
      case 0x3c:
        rep = "&lt;"
        break
      case 0x3e:
        rep = "&gt;"
        break
      case 0x0d:
        rep = "&#xD;"
        break
    }
    if (rep !== undefined) {
      out += text.slice(last, i) + rep
      last = i + 1
    }
  }
  return last === 0 ? text : out + text.slice(last)
}

/** Escapes an attribute value written between double quotes. */
export const escapeAttribute = (text: string): string =>
  escapeText(text).replace(/"/g, "&quot;").replace(/\t/g, "&#x9;").replace(/\n/g, "&#xA;")

/** XML NCName restricted to ASCII: the names the framework writes itself. */
export const isNcName = (name: string): boolean => /^[A-Za-z_][A-Za-z0-9._-]*$/.test(name)

/** A human-readable description of the character at `index`, for error messages. */
export const describeChar = (text: string, index: number): string =>
  `U+${text.charCodeAt(index).toString(16).toUpperCase().padStart(4, "0")} at index ${index}`
