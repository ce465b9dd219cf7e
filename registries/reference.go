package registries

import (
	"fmt"
	"sort"
	"strings"
)

// Reference renders every kind's declaration as the README's registry
// reference (Markdown), so the documentation cannot drift from the code.
func Reference(cat Catalog) string {
	var b strings.Builder
	b.WriteString("| kind | title | anonymous by default | requests in flight (`concurrency: auto`) at most |\n|---|---|---|---|\n")
	for _, k := range cat.Kinds() {
		s := cat[k].Spec()
		def := "no"
		if s.Default {
			def = "yes, as `" + k + "." + DefaultName + "`"
		}
		fmt.Fprintf(&b, "| [`%s`](#registry-%s) | %s | %s | %d |\n", k, k, mdText(s.Title), def, s.Ceiling())
	}
	for _, k := range cat.Kinds() {
		s := cat[k].Spec()
		fmt.Fprintf(&b, "\n#### <a id=\"registry-%s\"></a>`%s`: %s\n\n%s\n\n", k, k, mdText(s.Title), mdText(s.Description))
		b.WriteString("| variable | required | secret | description | supported values | when missing |\n|---|---|---|---|---|---|\n")
		for _, v := range s.Variables {
			req := ""
			if v.Required {
				req = "yes"
			}
			sec := ""
			if v.Secret {
				sec = "yes"
			}
			desc := v.Description
			if v.AliasOf != "" {
				desc += " (deprecated alias of `" + v.AliasOf + "`)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", v.Name, req, sec, mdText(desc), mdText(v.Supported), mdText(v.Default))
		}
		if len(s.Rules) > 0 {
			b.WriteString("\nRules: ")
			var rules []string
			for _, r := range s.Rules {
				if len(r.Needs) > 0 {
					rules = append(rules, fmt.Sprintf("`%s` needs `%s`", r.If, strings.Join(r.Needs, "`, `")))
				}
				if len(r.Excludes) > 0 {
					rules = append(rules, fmt.Sprintf("`%s` excludes `%s`", r.If, strings.Join(r.Excludes, "`, `")))
				}
			}
			b.WriteString(strings.Join(rules, "; ") + ".\n")
		}
		var endpoints []string
		for _, v := range s.Variables {
			if v.Endpoint {
				endpoints = append(endpoints, "`"+v.Name+"`")
			}
		}
		if len(endpoints) > 0 {
			fmt.Fprintf(&b, "\nSecrets saved in the UI go only where they were saved for: change %s and the UI asks for them again.\n",
				strings.Join(endpoints, ", "))
		}
		if s.CredentialHint != "" {
			fmt.Fprintf(&b, "\nWhen the registry refuses the credentials, the error adds: %s.\n", mdText(s.CredentialHint))
		}
		if len(s.Example) > 0 {
			keys := make([]string, 0, len(s.Example))
			for key := range s.Example {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			name := "main"
			if k == "custom" {
				name = "shpcr"
			}
			fmt.Fprintf(&b, "\n```yaml\nregistries:\n  %s:\n    %s:\n", k, name)
			for _, key := range keys {
				fmt.Fprintf(&b, "      %s: %q\n", key, s.Example[key])
			}
			b.WriteString("```\n")
			prefix := "TAGWATCH_REGISTRY_" + strings.ToUpper(k) + "_" + strings.ToUpper(name) + "_"
			fmt.Fprintf(&b, "\nor in the environment: `%s%s=…` (add `_FILE` to read the value from a file).\n", prefix, strings.ToUpper(keys[0]))
		}
	}
	return b.String()
}

// mdText escapes what Markdown would take for markup in prose and table
// cells: placeholders such as <region> would vanish as unknown HTML tags,
// and a | would split a cell.
var mdText = strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", `\|`).Replace
