package forensic

import "strings"

// quoter escapes what ends or bends a ClickHouse string literal: the quote
// and the backslash, and the control bytes a reader of the query (a log,
// 18.16's parser, which stops at a NUL) could mistake.
var quoter = strings.NewReplacer(
	`\`, `\\`,
	`'`, `\'`,
	"\x00", `\0`,
	"\n", `\n`,
	"\r", `\r`,
	"\t", `\t`,
)

// Quote returns s as a ClickHouse string literal that reads back as
// exactly s on 18.16 and on current ClickHouse. It is the one way user
// input enters a query: the native protocol of 18.16 binds no
// parameters, so every query here is text, and every value in it passes
// through Quote.
func Quote(s string) string {
	return "'" + quoter.Replace(s) + "'"
}
