"""A small GraphQL reader for the Shopify stand-in: queries (no mutations),
variables, aliases, arguments, inline fragments, and the calculated cost of a
selection as Shopify documents it (scalar 0, object 1, connection 2 + first x
the cost of one node)."""

import re

TOKEN = re.compile(r'''\s*(?:(?P<comment>\#[^\n]*)|(?P<spread>\.\.\.)|(?P<punct>[{}()\[\]:!$=,@|&])|
    (?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[_A-Za-z][_0-9A-Za-z]*))''',
                   re.X)


class GraphQLError(Exception):
    pass


def tokenize(text):
    pos, out = 0, []
    while True:
        while pos < len(text) and (text[pos] in " \t\r\n,\ufeff"):
            pos += 1
        if pos >= len(text):
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise GraphQLError(f"Parse error on \"{text[pos:pos + 10]}\" at {pos}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "comment":
            continue
        out.append((kind, m.group(kind)))
    return out


class Field:
    __slots__ = ("name", "alias", "args", "selections")

    def __init__(self, name, alias, args, selections):
        self.name, self.alias, self.args, self.selections = name, alias, args, selections

    @property
    def key(self):
        return self.alias or self.name


class Parser:
    def __init__(self, text, variables):
        self.toks = tokenize(text)
        self.i = 0
        self.variables = variables or {}
        self.fragments = {}

    def peek(self, value=None):
        if self.i >= len(self.toks):
            return None
        t = self.toks[self.i]
        return t if value is None or t[1] == value else None

    def take(self, value=None, kind=None):
        t = self.peek()
        if t is None or (value is not None and t[1] != value) or (kind and t[0] != kind):
            want = value or kind
            got = t[1] if t else "end of query"
            raise GraphQLError(f"Parse error on \"{got}\" (expected {want})")
        self.i += 1
        return t

    def document(self):
        """The operation's top selections (fragments resolved)."""
        ops, frag_defs = [], []
        while self.peek():
            if self.peek("{"):
                ops.append(("query", None))
                ops[-1] = ("query", self.i)
                self.skip_braces()
            elif self.peek("fragment"):
                self.take("fragment")
                name = self.take(kind="name")[1]
                self.take("on")
                self.take(kind="name")
                frag_defs.append((name, self.i))
                self.skip_braces()
            else:
                kind = self.take(kind="name")[1]
                if kind in ("mutation", "subscription"):
                    raise GraphQLError(f"The stand-in serves queries only, not {kind}s")
                if kind != "query":
                    raise GraphQLError(f"Parse error on \"{kind}\"")
                if self.peek() and self.peek()[0] == "name":
                    self.take()
                if self.peek("("):
                    self.variable_defs()
                ops.append(("query", self.i))
                self.skip_braces()
        if len(ops) != 1:
            raise GraphQLError("Exactly one operation is served")
        for name, at in frag_defs:
            self.fragments[name] = at
        self.i = ops[0][1]
        return self.selection_set()

    def skip_braces(self):
        self.take("{")
        depth = 1
        while depth:
            t = self.take()
            if t[1] == "{":
                depth += 1
            elif t[1] == "}":
                depth -= 1

    def variable_defs(self):
        self.take("(")
        while not self.peek(")"):
            self.take("$")
            name = self.take(kind="name")[1]
            self.take(":")
            self.type_ref()
            if self.peek("="):
                self.take("=")
                default = self.value(const=True)
                self.variables.setdefault(name, default)
        self.take(")")

    def type_ref(self):
        if self.peek("["):
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek("!"):
            self.take("!")

    def selection_set(self):
        self.take("{")
        out = []
        while not self.peek("}"):
            if self.peek("..."):
                self.take("...")
                if self.peek("on"):
                    self.take("on")
                    self.take(kind="name")
                    out.extend(self.selection_set())
                else:
                    name = self.take(kind="name")[1]
                    if name not in self.fragments:
                        raise GraphQLError(f"Fragment {name} was used, but not defined")
                    back = self.i
                    self.i = self.fragments[name]
                    out.extend(self.selection_set())
                    self.i = back
                continue
            name = self.take(kind="name")[1]
            alias = None
            if self.peek(":"):
                self.take(":")
                alias, name = name, self.take(kind="name")[1]
            args = {}
            if self.peek("("):
                self.take("(")
                while not self.peek(")"):
                    an = self.take(kind="name")[1]
                    self.take(":")
                    args[an] = self.value()
                self.take(")")
            while self.peek("@"):
                self.take("@")
                self.take(kind="name")
                if self.peek("("):
                    self.skip_parens()
            sel = self.selection_set() if self.peek("{") else None
            out.append(Field(name, alias, args, sel))
        self.take("}")
        return out

    def skip_parens(self):
        self.take("(")
        depth = 1
        while depth:
            t = self.take()
            depth += t[1] == "("
            depth -= t[1] == ")"

    def value(self, const=False):
        kind, text = self.take()
        if text == "$" and not const:
            name = self.take(kind="name")[1]
            return self.variables.get(name)
        if kind == "string":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        if text == "[":
            out = []
            while not self.peek("]"):
                out.append(self.value(const))
            self.take("]")
            return out
        if text == "{":
            out = {}
            while not self.peek("}"):
                k = self.take(kind="name")[1]
                self.take(":")
                out[k] = self.value(const)
            self.take("}")
            return out
        raise GraphQLError(f"Parse error on \"{text}\"")


def parse(text, variables=None):
    return Parser(text or "", dict(variables or {})).document()


def cost(fields, connections, objects, typename="QueryRoot", actual=None):
    """Requested cost of a selection. `connections` maps (type, field) to
    (node type); `objects` maps (type, field) to object type. `actual` maps
    a connection field's id() to the number of nodes it returned."""
    total = 0
    for f in fields or ():
        key = (typename, f.name)
        if key in connections:
            node_type = connections[key]
            n = f.args.get("first") or f.args.get("last") or 0
            if actual is not None:
                n = actual.get(id(f), 0)
            inner = 0
            for sub in f.selections or ():
                if sub.name in ("edges", "nodes"):
                    node_sel = sub.selections or ()
                    if sub.name == "edges":
                        node_sel = [s for s in node_sel if s.name == "node"]
                        node_sel = node_sel[0].selections if node_sel else ()
                    inner = max(inner, 1 + cost(node_sel, connections, objects, node_type, actual))
            total += 2 + n * inner
        elif key in objects:
            total += 1 + cost(f.selections, connections, objects, objects[key], actual)
    return total
