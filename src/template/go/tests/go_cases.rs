//! Templates covering the language and the builtins, with the output Go 1.19's `text/template`
//! gave for the same templates, functions and data.

use super::check_cases;

const DATA0: &str = r#"{"a": 1, "b": "x", "s": ["p", "q"], "m": {"k": "v", "n": null, "z": 2.5}, "e": [], "em": {}, "t": true, "f": false, "z": 0, "fl": 1.5, "big": 1000000, "nil": null, "nested": {"x": {"y": "deep"}}}"#;
const DATA1: &str = r#""s""#;

#[test]
fn text() {
    check_cases(&[
        (r#"plain text"#, "", r#"plain text"#),
        (r#"a {{/* c */}} b"#, "", r#"a  b"#),
        (r#"a  {{- /* c */ -}}  b"#, "", r#"ab"#),
        ("x \n {{- 1 -}} \n y", "", r#"x1y"#),
        (r#"{{1}}-{{2}}"#, "", r#"1-2"#),
        (r#"a {{- "b"}}"#, "", r#"ab"#),
        (r#"{{"a" -}} b"#, "", r#"ab"#),
        ("\n\t {{- 3}}", "", r#"3"#),
        ("{{3 -}}\n\t z", "", r#"3z"#),
    ]);
}

#[test]
fn literals() {
    check_cases(&[
        (r#"{{"a\tb\n"}}"#, "", "a\tb\n"),
        (r#"{{"\x41\u00e9\101"}}"#, "", r#"AéA"#),
        (r#"{{`raw\n`}}"#, "", r#"raw\n"#),
        (r#"{{'a'}}"#, "", r#"97"#),
        (r#"{{'\n'}}"#, "", r#"10"#),
        (r#"{{0x1F}}"#, "", r#"31"#),
        (r#"{{0o17}}"#, "", r#"15"#),
        (r#"{{017}}"#, "", r#"15"#),
        (r#"{{0b101}}"#, "", r#"5"#),
        (r#"{{1_000}}"#, "", r#"1000"#),
        (r#"{{1.5}}"#, "", r#"1.5"#),
        (r#"{{1e6}}"#, "", r#"1e+06"#),
        (r#"{{1e3}}"#, "", r#"1000"#),
        (r#"{{1.0}}"#, "", r#"1"#),
        (r#"{{.5}}"#, "", r#"0.5"#),
        (r#"{{-3}}"#, "", r#"-3"#),
        (r#"{{+3}}"#, "", r#"3"#),
        (r#"{{true}}"#, "", r#"true"#),
        (r#"{{false}}"#, "", r#"false"#),
        (r#"{{0x1p-2}}"#, "", r#"0.25"#),
        (r#"{{123456.0}}"#, "", r#"123456"#),
        (r#"{{1234567.0}}"#, "", r#"1.234567e+06"#),
        (r#"{{0.0001}}"#, "", r#"0.0001"#),
        (r#"{{0.00001}}"#, "", r#"1e-05"#),
        (r#"{{1e21}}"#, "", r#"1e+21"#),
        (r#"{{1e20}}"#, "", r#"1e+20"#),
        (r#"{{-0.0}}"#, "", r#"-0"#),
        (r#"{{'\''}}"#, "", r#"39"#),
        (r#"{{"\""}}"#, "", r#"""#),
        (r#"{{'é'}}"#, "", r#"233"#),
    ]);
}

#[test]
fn data() {
    check_cases(&[
        (
            r#"{{.a}} {{.b}} {{.s}} {{.m}} {{.e}} {{.em}} {{.t}} {{.fl}} {{.big}} {{.nil}} {{.missing}}"#,
            DATA0,
            r#"1 x [p q] map[k:v n:<nil> z:2.5] [] map[] true 1.5 1e+06 <no value> <no value>"#,
        ),
        (
            r#"{{.m.k}} {{.m.n}} {{.m.missing}} {{.missing.x}} {{.nested.x.y}}"#,
            DATA0,
            r#"v <no value> <no value> <no value> deep"#,
        ),
        (
            r#"{{.}}"#,
            DATA0,
            r#"map[a:1 b:x big:1e+06 e:[] em:map[] f:false fl:1.5 m:map[k:v n:<nil> z:2.5] nested:map[x:map[y:deep]] nil:<nil> s:[p q] t:true z:0]"#,
        ),
        (r#"{{.}}"#, "", r#"<no value>"#),
        (r#"{{.Foo}}"#, "", r#"<no value>"#),
        (r#"{{$}}"#, DATA1, r#"s"#),
        (
            r#"{{print .nil}} {{print .missing}} {{printf "%v" .missing}}"#,
            DATA0,
            r#"<nil> <nil> <nil>"#,
        ),
        (
            r#"{{index .m "k"}} {{index .m "nope"}} {{index .s 1}} {{index .nested "x" "y"}}"#,
            DATA0,
            r#"v <no value> q deep"#,
        ),
        (
            r#"{{len .s}} {{len .m}} {{len .b}} {{len "héllo"}}"#,
            DATA0,
            r#"2 3 1 6"#,
        ),
    ]);
}

#[test]
fn vars() {
    check_cases(&[
        (r#"{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}"#, "", r#"12"#),
        (
            r#"{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}"#,
            "",
            r#"21"#,
        ),
        (
            r#"{{$x := 1}}{{if true}}{{$x = 2}}{{$x}}{{end}}{{$x}}"#,
            "",
            r#"22"#,
        ),
        (
            r#"{{range $i, $e := .s}}{{$i}}={{$e}},{{end}}"#,
            DATA0,
            r#"0=p,1=q,"#,
        ),
        (r#"{{range $e := .s}}{{$e}},{{end}}"#, DATA0, r#"p,q,"#),
        (
            r#"{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}"#,
            DATA0,
            r#"k=v;n=<no value>;z=2.5;"#,
        ),
        (r#"{{with $x := .b}}{{$x}}{{.}}{{end}}"#, DATA0, r#"xx"#),
        (r#"{{range .s}}{{$.b}}{{.}}{{end}}"#, DATA0, r#"xpxq"#),
        (
            r#"{{$x := 0}}{{range .s}}{{$x = add $x 1}}{{end}}{{$x}}"#,
            DATA0,
            r#"2"#,
        ),
        (
            r#"{{range $i, $e := .s}}{{$x := $i}}{{$x}}{{end}}"#,
            DATA0,
            r#"01"#,
        ),
        (
            r#"{{if $x := .a}}{{$x}}{{else}}{{$x}}{{end}}"#,
            DATA0,
            r#"1"#,
        ),
        (
            r#"{{with $x := .z}}yes{{else}}{{$x}}{{end}}"#,
            DATA0,
            r#"0"#,
        ),
    ]);
}

#[test]
fn control() {
    check_cases(&[
        (
            r#"{{if .t}}T{{else}}F{{end}}{{if .f}}T{{else}}F{{end}}{{if .z}}T{{end}}{{if .e}}E{{end}}{{if .em}}M{{end}}{{if .m}}M{{end}}"#,
            DATA0,
            r#"TFM"#,
        ),
        (
            r#"{{if .f}}1{{else if .z}}2{{else if .a}}3{{else}}4{{end}}"#,
            DATA0,
            r#"3"#,
        ),
        (
            r#"{{with .b}}{{.}}{{else}}none{{end}}{{with .missing}}{{.}}{{else}}none{{end}}"#,
            DATA0,
            r#"xnone"#,
        ),
        (
            r#"{{range .e}}x{{else}}empty{{end}}{{range .missing}}x{{else}}nothing{{end}}{{range .em}}x{{else}}em{{end}}"#,
            DATA0,
            r#"emptynothingem"#,
        ),
        (
            r#"{{range .m}}{{.}},{{end}}"#,
            DATA0,
            r#"v,<no value>,2.5,"#,
        ),
        (
            r#"{{range seq 1 5}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}"#,
            "",
            r#"13"#,
        ),
        (
            r#"{{range .s}}{{range $.s}}{{.}}{{break}}{{end}}{{end}}"#,
            DATA0,
            r#"pp"#,
        ),
        (
            r#"{{define "x"}}X{{.}}X{{end}}{{template "x" .b}}{{template "x"}}"#,
            DATA0,
            r#"XxXX<no value>X"#,
        ),
        (r#"{{block "b" .a}}B{{.}}{{end}}"#, DATA0, r#"B1"#),
        (r#"{{define "t"}}only{{end}}"#, "", r#"only"#),
        ("a{{define \"x\"}}X{{end}}\nb", "", "a\nb"),
        (
            r#"{{define "r"}}{{if gt . 0}}{{.}}{{template "r" add . -1}}{{end}}{{end}}{{template "r" 5}}"#,
            "",
            r#"54321"#,
        ),
        (
            r#"{{range $i, $e := gets "/proxy/*"}}{{$i}}:{{.Key}}={{.Value}} {{end}}"#,
            "",
            r#"0:/proxy/frontend/web-2=10.0.0.2:80 1:/proxy/frontend/web-1=10.0.0.1:80 "#,
        ),
        (
            r#"{{with get "/app/port"}}{{.Key}} {{.Value}}{{end}}"#,
            "",
            r#"/app/port 8080"#,
        ),
        (
            r#"{{(get "/app/port").Value}} {{(index (gets "/proxy/*") 1).Key}}"#,
            "",
            r#"8080 /proxy/frontend/web-1"#,
        ),
    ]);
}

#[test]
fn builtins() {
    check_cases(&[
        (
            r#"{{and 1 0 2}} {{and 1 2}} {{or 0 "" 3}} {{or 0 ""}} {{not 0}} {{not .s}}"#,
            DATA0,
            r#"0 2 3  true false"#,
        ),
        (
            r#"{{and .missing .boom}} {{or .t .boom.x}}"#,
            DATA0,
            r#"<no value> true"#,
        ),
        (
            r#"{{print 1 2 "a" "b" 3 .s .nil}}|{{println 1 "a" 2}}|{{print}}|{{println}}"#,
            DATA0,
            "1 2ab3 [p q] <nil>|1 a 2\n||\n",
        ),
        (
            r#"{{print "a" 1 2 "b"}} {{print 1.5 true nil}}"#,
            "",
            r#"a1 2b 1.5 true <nil>"#,
        ),
        (
            r#"{{eq 1 1}} {{eq 1 2 3 1}} {{eq "a" "a"}} {{ne 1 2}} {{eq .b "x"}} {{eq .missing "x"}} {{eq .nil nil}}"#,
            DATA0,
            r#"true true true true true false true"#,
        ),
        (
            r#"{{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}} {{lt "a" "b"}} {{lt 1.5 2.5}} {{lt .fl 2.0}}"#,
            DATA0,
            r#"true true true false true true true"#,
        ),
        (
            r#"{{html "<a href='x'>&\"</a>"}} {{js "it's \"q\" <x> & = \n é"}} {{urlquery "a b&c=d/é"}}"#,
            "",
            r#"&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt; it\'s \"q\" \u003Cx\u003E \u0026 \u003D \u000A é a+b%26c%3Dd%2F%C3%A9"#,
        ),
        (
            r#"{{html .missing}} {{urlquery 1 2}} {{js nil}} {{html .s}}"#,
            DATA0,
            r#"&lt;no value&gt; 1+2 \u003Cno value\u003E [p q]"#,
        ),
        (
            r#"{{slice .s 1}} {{slice .s 0 1}} {{slice "hello" 1 3}} {{slice .s}} {{slice .s 1 2 2}}"#,
            DATA0,
            r#"[q] [p] el [p q] [q]"#,
        ),
        (
            r#"{{index "abc" 1}} {{index (split "a,b" ",") 1}}"#,
            "",
            r#"98 b"#,
        ),
        (
            r#"{{len (gets "/proxy/*")}} {{(gets "/proxy/*").Len}}"#,
            "",
            r#"2 2"#,
        ),
        (
            r#"{{.b | printf "%s-%s" "a"}} {{"x" | toUpper}} {{1 | add 2}}"#,
            DATA0,
            r#"a-x X 3"#,
        ),
        (
            r#"{{datetime.Unix}} {{datetime}} {{datetime.Format "2006-01-02"}} {{printf "%T" datetime}} {{printf "%s|%v|%q" datetime datetime datetime}}"#,
            "",
            r#"1614834367 2021-03-04 05:06:07 +0000 UTC 2021-03-04 time.Time 2021-03-04 05:06:07 +0000 UTC|2021-03-04 05:06:07 +0000 UTC|"2021-03-04 05:06:07 +0000 UTC""#,
        ),
        (
            r#"{{getv "/nope" "dflt"}} {{getv "/app/port"}}"#,
            "",
            r#"dflt 8080"#,
        ),
        (r#"{{join (split "a-b-c" "-") "+"}}"#, "", r#"a+b+c"#),
        (
            r#"{{half 3}} {{half 1.5}} {{add 1.0 2}} {{add 'a' 1}} {{add 1e3 1}}"#,
            "",
            r#"1.5 0.75 3 98 1001"#,
        ),
        (
            r#"{{json `{"a":[1,2,{"b":null}],"c":1e6,"d":1.25}`}}"#,
            "",
            r#"map[a:[1 2 map[b:<nil>]] c:1e+06 d:1.25]"#,
        ),
        (
            r#"{{printf "%T %T %T %T %T %T %T %T %T" 1 1.5 "s" true nil .s .m (gets "/") (index (gets "/") 0)}}"#,
            DATA0,
            r#"int float64 string bool <nil> []interface {} map[string]interface {} memkv.KVPairs memkv.KVPair"#,
        ),
        (
            r#"{{printf "%T %T" (split "a" ",") (seq 1 2)}}"#,
            "",
            r#"[]string []int"#,
        ),
        (
            r#"{{nil_value}} {{print nil_value}} {{printf "%v" nil_value}}"#,
            "",
            r#"<no value> <nil> <nil>"#,
        ),
    ]);
}
