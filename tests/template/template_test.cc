// The Jinja subset (template/): Jinja2's semantics on the constructs chat templates use, with the
// expected strings worked out by Jinja2's rules (trim_blocks, lstrip_blocks, scoping, Python's
// str() and json.dumps). The family templates themselves are checked against @huggingface/jinja
// in tests/js/template.test.mjs.
#include <gtest/gtest.h>

#include "lowbit/template/named_templates.h"
#include "lowbit/template/template.h"

namespace lowbit::jinja {
namespace {

std::string Render(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object(), const Limits& limits = {}) {
  auto t = Template::Parse(src);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  auto r = t->Render(Value::FromJson(ctx), limits);
  if (!r.ok()) return "RENDER ERROR: " + r.status().message();
  return *r;
}

TEST(Jinja, TextExpressionsAndLiterals) {
  EXPECT_EQ(Render("Hello {{ name }}!", {{"name", "World"}}), "Hello World!");
  EXPECT_EQ(Render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}"), "7 3 -4 1 2 1024 3.5");
  EXPECT_EQ(Render("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'x' + 'y' }}|{{ 1.0 }}|{{ [1, 'a'] }}|{{ {'k': 'v'} }}"),
            "a1NoneTrue|xy|1.0|[1, 'a']|{'k': 'v'}");
  EXPECT_EQ(Render("{{ 'it\\'s' }} {{ \"q\\\"\" }} {{ 'a\\nb' }}"), "it's q\" a\nb");
  EXPECT_EQ(Render("{{ undefined_thing }}|{{ x.y.z }}|{{ d['missing'] }}", {{"d", nlohmann::ordered_json::object()}}), "||");
  EXPECT_EQ(Render("{{ 'yes' if a else 'no' }} {{ 'yes' if b }}.", {{"a", false}, {"b", false}}), "no .");
  EXPECT_EQ(Render("{{ not a and b or c }}", {{"a", false}, {"b", 0}, {"c", "z"}}), "z");
  EXPECT_EQ(Render("{{ 'ab' in 'cabd' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }}"), "True True True");
}

TEST(Jinja, PrecedenceOfFiltersConcatAndPlus) {
  // Filters bind to the postfix expression; ~ binds tighter than +.
  EXPECT_EQ(Render("{{ 'a' + x | trim + 'b' }}", {{"x", "  X  "}}), "aXb");
  EXPECT_EQ(Render("{{ -x | abs }}", {{"x", -3}}), "3");  // -(x) | abs, as Jinja2 parses it
  EXPECT_EQ(Render("{{ 1 + 2 ~ 3 }}"), "RENDER ERROR: template line 1: unsupported operand types for +: integer and string");
}

TEST(Jinja, WhitespaceControlTrimAndLstripBlocks) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before one.
  EXPECT_EQ(Render("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(Render("line\n    {% if true %}x{% endif %}\n"), "line\nx");
  EXPECT_EQ(Render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(Render("a\n  {{- 'b' -}}\n  c"), "abc");
  EXPECT_EQ(Render("x {# comment #}\ny"), "x y");
  EXPECT_EQ(Render("  {%+ if true %}k{% endif %}"), "  k");
  EXPECT_EQ(Render("keep\n"), "keep");  // one trailing newline dropped
  EXPECT_EQ(Render("keep\n\n"), "keep\n");
  EXPECT_EQ(Render("{{ 'v' }}\nnext"), "v\nnext");  // not after an expression
}

TEST(Jinja, LoopsAndLoopVariables) {
  const nlohmann::ordered_json ctx = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(Render("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", ctx), "1a,2b,3c");
  EXPECT_EQ(Render("{% for x in xs %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.length }};{% endfor %}", ctx),
            "03True3;12False3;21False3;");
  EXPECT_EQ(Render("{% for x in xs if x != 'b' %}{{ loop.index }}{{ x }}{{ loop.last }} {% endfor %}", ctx), "1aFalse 2cTrue ");
  EXPECT_EQ(Render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Render("{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}), "b=1 a=2 ");
  EXPECT_EQ(Render("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break %}{% endif %}{{ x }}{% endfor %}", ctx), "a");
  EXPECT_EQ(Render("{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}"), "012531");
  EXPECT_EQ(Render("{% for x in xs %}{{ loop.previtem }}{{ loop.cycle('o', 'e') }}{% endfor %}", ctx), "oaebo");
}

TEST(Jinja, ScopingAndNamespaces) {
  // `set` inside a loop does not leak out; a namespace carries state out.
  EXPECT_EQ(Render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(Render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_EQ(Render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");  // if has no scope
  EXPECT_EQ(Render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(Render("{% set block %}in {{ 'side' }}{% endset %}[{{ block }}]"), "[in side]");
}

TEST(Jinja, MacrosWithDefaults) {
  EXPECT_EQ(Render("{% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
  EXPECT_EQ(Render("{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}"), "G");
}

TEST(Jinja, FiltersTestsAndMethods) {
  const nlohmann::ordered_json msgs = {{"msgs", {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U1"}}, {{"role", "user"}, {"content", "U2"}}}}};
  EXPECT_EQ(Render("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", msgs), "U1,U2");
  EXPECT_EQ(Render("{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}", msgs), "1");
  EXPECT_EQ(Render("{{ msgs[0]['content'] }}{{ msgs[-1].content }}{{ msgs[1:] | length }}{{ 'abc'[::-1] }}{{ [1,2,3][1:] }}", msgs), "SU22cba[2, 3]");
  EXPECT_EQ(Render("{{ '  x '.strip() }}|{{ 'a,b'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'Hello'.startswith('He') }}|{{ 'x'.upper() }}"),
            "x|['a', 'b']|['a', 'b', 'c']|True|X");
  EXPECT_EQ(Render("{{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ 'a-b-c' | replace('-', '+') }} {{ none | default('d') }} {{ z | default('d') }}"),
            "Hello World Hello a+b+c None d");
  EXPECT_EQ(Render("{{ {'a': [1, 2.5, true, none], 'b': 'q\"\\n'} | tojson }}"), "{\"a\": [1, 2.5, true, null], \"b\": \"q\\\"\\n\"}");
  EXPECT_EQ(Render("{{ {'a': [1], 'b': {}} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
  EXPECT_EQ(Render("{{ 'é' | tojson }} {{ 'é' | length }}"), "\"é\" 1");  // ensure_ascii=False; characters, not bytes
  EXPECT_EQ(Render("{{ x is defined }}{{ y is none }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ 's' is string }}{{ x is not mapping }}",
                   {{"x", 1}, {"y", nullptr}}),
            "TrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(Render("{{ d.get('a') }}{{ d.get('z', 'def') }}{{ d.keys() | list }}", {{"d", {{"a", 1}}}}), "1def['a']");
  EXPECT_EQ(Render("{% set l = [] %}{% set _ = l.append(3) %}{{ l }}"), "[3]");
  EXPECT_EQ(Render("{{ 'line1\nline2' | indent(2) }}|{{ 3.14159 | round(2) }}|{{ '12' | int + 1 }}"), "line1\n  line2|3.14|13");
}

TEST(Jinja, ErrorsNameTheLine) {
  EXPECT_EQ(Render("a\n{{ raise_exception('Only user and assistant roles are supported!') }}"),
            "RENDER ERROR: template line 2: Only user and assistant roles are supported!");
  EXPECT_EQ(Render("{% if x %}"), "PARSE ERROR: template line 1: missing '{% endif %}'");
  EXPECT_EQ(Render("{{ 1 + }}"), "PARSE ERROR: template line 1: expected an expression, found '}}'");
  EXPECT_EQ(Render("x\n\n{% frobnicate %}"), "PARSE ERROR: template line 3: unsupported statement 'frobnicate'");
  EXPECT_EQ(Render("{{ 'unclosed }}"), "PARSE ERROR: template line 1: string literal is not closed");
  EXPECT_EQ(Render("{{ x | nosuchfilter }}"), "RENDER ERROR: template line 1: unknown filter 'nosuchfilter'");
  EXPECT_EQ(Render("{{ 1 // 0 }}"), "RENDER ERROR: template line 1: integer division or modulo by zero");
}

TEST(Jinja, HostileTemplatesEndWithAnError) {
  // Runaway work, output and nesting are bounded (the step limit is lowered here to keep the test short).
  const std::string loops = Render("{% for i in range(1000000) %}{% for j in range(1000000) %}x{% endfor %}{% endfor %}", {}, Limits{.max_steps = 100000});
  EXPECT_NE(loops.find("more than 100000 steps"), std::string::npos) << loops;
  EXPECT_NE(Render("{% for i in range(1000000) %}{{ 'x' * 1000 }}{% endfor %}", {}, Limits{.max_output = 1 << 20}).find("output larger"), std::string::npos);
  const std::string rec = Render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}");
  EXPECT_NE(rec.find("deeper than 200"), std::string::npos) << rec;
  const std::string parens = Render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_NE(parens.find("deeper than 200"), std::string::npos) << parens.substr(0, 200);
  EXPECT_NE(Render("{% set s = 'x' * 100000000 %}").find("too large"), std::string::npos);
  EXPECT_NE(Render("{{ range(100000000) }}").find("too many"), std::string::npos);
}

TEST(Jinja, IntegerEdgesAreDefined) {
  // Ints wrap at 64 bits (no signed overflow), floats convert to int saturating, and slices and
  // ranges with huge steps stop before their index leaves int64 (each was undefined behaviour).
  EXPECT_EQ(Render("{{ -(-9223372036854775807 - 1) }} {{ (-9223372036854775807 - 1) | abs }} {{ [9223372036854775807, 1] | sum }}"),
            "-9223372036854775808 -9223372036854775808 -9223372036854775808");
  EXPECT_EQ(Render("{{ 1e300 | int }} {{ -1e300 | int }} {{ 'nan' | float | int }} {{ 2.9 | int }}"), "9223372036854775807 -9223372036854775808 0 2");
  EXPECT_EQ(Render("{{ 'x' | indent(1e300) }}|{{ 'a,b,c' | replace(',', '', 1e300) }}"), "x|abc");
  EXPECT_EQ(Render("{{ 'abc'[1::9223372036854775807] }} {{ 'abc'[::-9223372036854775807 - 1] }} {{ [1, 2, 3][-9223372036854775807 - 1:] }}"), "b c [1, 2, 3]");
  EXPECT_EQ(Render("{{ range(1, 9223372036854775807, 9223372036854775807) }} {{ range(-9223372036854775807 - 1, 9223372036854775807, 9223372036854775807) }}"),
            "[1] [-9223372036854775808, -1, 9223372036854775806]");  // Python's range() gives the same
  EXPECT_EQ(Render("{{ range(9223372036854775807, -9223372036854775807 - 1, -9223372036854775807 - 1) }}"), "[9223372036854775807, -1]");
  // The size check of 'abcd' * 2**62 wrapped to 0 and the loop ran 2**62 times.
  EXPECT_EQ(Render("{{ 'abcd' * 4611686018427387904 }}"), "RENDER ERROR: template line 1: string repetition too large");
}

TEST(Jinja, SelfContainingValuesAndRunawayGrowthEndWithAnError) {
  // Lists and dicts are shared by reference: storing one into itself made a cycle (printing it
  // recursed until the stack overflowed; the memory was never freed).
  EXPECT_EQ(Render("{% set l = [] %}{{ l.append(l) }}"), "RENDER ERROR: template line 1: append: a list cannot contain itself");
  EXPECT_EQ(Render("{% set l = [1] %}{{ l.extend([[l]]) }}"), "RENDER ERROR: template line 1: extend: a list cannot contain itself");
  EXPECT_EQ(Render("{% set l = [1] %}{{ l.insert(0, {'a': l}) }}"), "RENDER ERROR: template line 1: insert: a list cannot contain itself");
  EXPECT_EQ(Render("{% set d = {} %}{{ d.update({'x': [d]}) }}"), "RENDER ERROR: template line 1: update: a dict cannot contain itself");
  EXPECT_EQ(Render("{% set d = {} %}{{ d.setdefault('k', d) }}"), "RENDER ERROR: template line 1: setdefault: a dict cannot contain itself");
  EXPECT_EQ(Render("{% set ns = namespace(a=[]) %}{% set ns.b = [ns] %}"),
            "RENDER ERROR: template line 1: cannot set 'b' on 'ns': a namespace cannot contain itself");
  EXPECT_EQ(Render("{% set a = [1] %}{% set b = [a, a] %}{{ b.append([a, b[0]]) }}{{ b }}"), "None[[1], [1], [[1], [1]]]");  // shared, not cyclic
  // Values double per step (s ~ s, l + l, l.extend(l)): bounded like the output, not only the output.
  const Limits small{.max_output = 1 << 20};
  EXPECT_EQ(Render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", {}, small),
            "RENDER ERROR: template line 1: a string longer than 1048576 bytes");
  EXPECT_EQ(Render("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
            "RENDER ERROR: template line 1: a list longer than 1048576 items");
  EXPECT_EQ(Render("{% set l = [1] %}{% for i in range(64) %}{{ l.extend(l) }}{% endfor %}"),
            "RENDER ERROR: template line 1: extend: list longer than 1048576 items");
}

TEST(Jinja, RenderingDoesNotChangeTheContext) {
  // The template's appends and sets stay in the render: the same context renders the same twice,
  // and a macro stored into it cannot outlive the render that defined it.
  auto t = Template::Parse("{% macro m() %}M{% endmacro %}{{ messages | length }}{{ messages.append(m) }}{% set ns = namespace() %}{{ messages[-1]() }}");
  ASSERT_TRUE(t.ok()) << t.status().message();
  const Value ctx = Value::FromJson({{"messages", {{{"role", "user"}}}}});
  for (int i = 0; i < 2; ++i) {
    auto r = t->Render(ctx);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, "1NoneM");
  }
  EXPECT_EQ(ctx.Get("messages").array().size(), 1u);
}

TEST(Jinja, EveryNamedTemplateParsesAndRenders) {
  const nlohmann::ordered_json ctx = {
      {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Hello."}}, {{"role", "user"}, {"content", "Bye"}}}},
      {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_generation_prompt", true}};
  nlohmann::ordered_json no_system = ctx;
  no_system["messages"].erase(no_system["messages"].begin());
  for (const NamedTemplate& t : NamedTemplates()) {
    SCOPED_TRACE(t.name);
    auto tpl = Template::Parse(t.source);
    ASSERT_TRUE(tpl.ok()) << tpl.status().message();
    auto with = tpl->Render(Value::FromJson(ctx));
    auto without = tpl->Render(Value::FromJson(no_system));
    ASSERT_TRUE(with.ok() || without.ok()) << (with.ok() ? "" : with.status().message());  // gemma refuses a system message
    const std::string& out = without.ok() ? *without : *with;
    EXPECT_NE(out.find("Hi"), std::string::npos) << out;
    EXPECT_NE(out.find("Bye"), std::string::npos) << out;
  }
  // Two spot checks against the strings the model cards show.
  auto chatml = Template::Parse(FindNamedTemplate("chatml")->source);
  EXPECT_EQ(*chatml->Render(Value::FromJson(no_system)),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  auto llama2 = Template::Parse(FindNamedTemplate("llama2")->source);
  EXPECT_EQ(*llama2->Render(Value::FromJson(ctx)), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
}

}  // namespace
}  // namespace lowbit::jinja
