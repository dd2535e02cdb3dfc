/**
 * What the terminal can take. Colour only for a terminal, and never when NO_COLOR is set
 * (https://no-color.org: any non-empty value); a pipe or a file gets plain text.
 */
export const useColor = (stream: { readonly isTTY?: boolean | undefined }): boolean =>
  stream.isTTY === true && (process.env["NO_COLOR"] ?? "") === ""
