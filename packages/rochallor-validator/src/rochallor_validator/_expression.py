"""The expression language of expressions.md: tokenizer, parser, AST, printer and compiler.

Expressions are parsed once into an AST, then compiled into nested Python closures. No user
text is ever handed to ``eval``/``exec``. Parentheses and ``${...}`` are transparent in the AST
(they only group), so ``print_expression(parse(s))`` is a canonical spelling of ``s`` and
``parse(print_expression(node)) == node`` for every AST.
"""

from __future__ import annotations

import decimal
import functools
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeAlias

import attrs

from rochallor_validator._errors import (
    ExpressionEvaluationError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    NonBooleanResult,
)
from rochallor_validator._limits import (
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
)

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# --------------------------------------------------------------------------------------------
# AST


@attrs.frozen
class Literal:
    value: bool | int | float | str | None


@attrs.frozen
class Reference:
    path: tuple[str, ...]
    hashed: bool = False  # written as ``#name`` (legacy style); same meaning as bare


@attrs.frozen
class Unary:
    op: str  # "!" or "-"
    operand: Node


@attrs.frozen
class Binary:
    op: str  # || && == != < <= > >= in + - * /
    left: Node
    right: Node


@attrs.frozen
class Call:
    name: str  # "len" or "contains"
    args: tuple[Node, ...]


Node: TypeAlias = Literal | Reference | Unary | Binary | Call

# --------------------------------------------------------------------------------------------
# Tokenizer

_KEYWORDS: Final = frozenset({"true", "false", "null", "nil", "in"})
_FUNCTIONS: Final = {"len": 1, "contains": 2}
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE: Final = re.compile(r"[0-9]+(\.[0-9]*)?")
_TWO_CHAR_OPS: Final = frozenset({"||", "&&", "==", "!=", "<=", ">=", "${"})
_ONE_CHAR_OPS: Final = frozenset("<>+-*/!(),.}")
_WHITESPACE: Final = " \t\r\n"


@attrs.frozen
class Token:
    kind: str  # "int", "float", "str", "ident", "hash", "func", "kw", "op", "eof"
    text: str
    pos: int
    value: Any = None


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            m = _IDENT_RE.match(source, i)
            assert m is not None
            word = m.group()
            end = m.end()
            if word in _KEYWORDS:
                tokens.append(Token("kw", word, i))
            else:
                j = end
                while j < n and source[j] in _WHITESPACE:
                    j += 1
                is_call = j < n and source[j] == "("
                prev_dot = bool(tokens) and tokens[-1].text == "." and tokens[-1].kind == "op"
                if is_call and not prev_dot:
                    if word not in _FUNCTIONS:
                        raise ExpressionSyntaxError(source, f"unknown function {word!r}", i)
                    tokens.append(Token("func", word, i))
                elif is_call:
                    raise ExpressionSyntaxError(source, "method calls are not supported", i)
                else:
                    tokens.append(Token("ident", word, i))
            i = end
            continue
        if ch.isascii() and ch.isdigit():
            m = _NUMBER_RE.match(source, i)
            assert m is not None
            text = m.group()
            if text.endswith("."):
                raise ExpressionSyntaxError(source, "digits required after decimal point", i)
            if "." in text:
                value: float | int = float(text)
                if not math.isfinite(value):
                    raise ExpressionSyntaxError(source, "float literal out of range", i)
            else:
                # 20 digits bound the work of int() and exceed every 64-bit value anyway
                digits = text.lstrip("0") or "0"
                value = int(digits) if len(digits) <= 20 else INT64_MAX + 1
                if value > INT64_MAX:
                    raise ExpressionSyntaxError(source, "integer literal out of range", i)
            tokens.append(Token("float" if "." in text else "int", text, i, value))
            i = m.end()
            continue
        if ch in "'\"":
            end = source.find(ch, i + 1)
            if end < 0:
                raise ExpressionSyntaxError(source, "unterminated string", i)
            tokens.append(Token("str", source[i : end + 1], i, source[i + 1 : end]))
            i = end + 1
            continue
        if ch == "#":
            m = _IDENT_RE.match(source, i + 1)
            if m is None:
                raise ExpressionSyntaxError(source, "'#' must be followed by an identifier", i)
            if m.group() in _KEYWORDS:
                raise ExpressionSyntaxError(source, f"keyword {m.group()!r} after '#'", i)
            tokens.append(Token("hash", m.group(), i))
            i = m.end()
            continue
        two = source[i : i + 2]
        if two in _TWO_CHAR_OPS:
            tokens.append(Token("op", two, i))
            i += 2
            continue
        if ch in _ONE_CHAR_OPS:
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        raise ExpressionSyntaxError(source, f"unexpected character {ch!r}", i)
    tokens.append(Token("eof", "", n))
    return tokens


# --------------------------------------------------------------------------------------------
# Parser (recursive descent, one function per grammar level of expressions.md section 2)

_RELATIONAL: Final = frozenset({"<", "<=", ">", ">="})


class _Parser:
    def __init__(self, source: str) -> None:
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise ExpressionLimitError(
                source,
                f"expression longer than {MAX_EXPRESSION_LENGTH} characters",
                MAX_EXPRESSION_LENGTH,
                "length",
            )
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        #: Open nesting levels (brackets, ``${``, calls, unary operators) at this point.
        self.nesting = 0
        #: Operator-tree depth of every node built so far, by identity.
        self.depths: dict[int, int] = {}

    def enter(self, tok: Token) -> None:
        """One more nesting level, opened by ``tok``."""
        self.nesting += 1
        if self.nesting > MAX_EXPRESSION_NESTING:
            raise ExpressionLimitError(
                self.source,
                f"expression nested deeper than {MAX_EXPRESSION_NESTING} levels",
                tok.pos,
                "nesting",
            )

    def leave(self) -> None:
        self.nesting -= 1

    def node(self, node: Node, tok: Token, *children: Node) -> Node:
        """Record the operator-tree depth of ``node`` (built at ``tok``); enforce the limit."""
        depth = 1 + max((self.depths.get(id(c), 1) for c in children), default=0)
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionLimitError(
                self.source,
                f"expression has more than {MAX_EXPRESSION_DEPTH} levels of operators",
                tok.pos,
                "depth",
            )
        self.depths[id(node)] = depth
        return node

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        tok = self.tokens[self.i]
        return tok.kind == "op" and tok.text in ops

    def fail(self, detail: str, tok: Token | None = None) -> ExpressionSyntaxError:
        tok = tok or self.peek()
        return ExpressionSyntaxError(self.source, detail, tok.pos)

    def expect(self, op: str, what: str) -> None:
        if not self.at_op(op):
            raise self.fail(f"expected {what}")
        self.advance()

    def parse(self) -> Node:
        if self.peek().kind == "eof":
            raise self.fail("empty expression")
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "eof":
            if tok.kind == "op" and tok.text == ")":
                raise self.fail("unbalanced parenthesis")
            if tok.kind == "op" and tok.text == "}":
                raise self.fail("unbalanced '}'")
            if (tok.kind == "op" and tok.text in _RELATIONAL) or tok.text == "in":
                raise self.fail("chained comparison is not allowed")
            raise self.fail(f"unexpected {tok.text!r}")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at_op("||"):
            tok = self.advance()
            right = self.parse_and()
            node = self.node(Binary("||", node, right), tok, node, right)
        return node

    def parse_and(self) -> Node:
        node = self.parse_equality()
        while self.at_op("&&"):
            tok = self.advance()
            right = self.parse_equality()
            node = self.node(Binary("&&", node, right), tok, node, right)
        return node

    def parse_equality(self) -> Node:
        node = self.parse_relational()
        while self.at_op("==", "!="):
            tok = self.advance()
            right = self.parse_relational()
            node = self.node(Binary(tok.text, node, right), tok, node, right)
        return node

    def _relational_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _RELATIONAL:
            return tok.text
        if tok.kind == "kw" and tok.text == "in":
            return "in"
        return None

    def parse_relational(self) -> Node:
        node = self.parse_additive()
        op = self._relational_op()
        if op is not None:
            tok = self.advance()
            right = self.parse_additive()
            node = self.node(Binary(op, node, right), tok, node, right)
            if self._relational_op() is not None:
                raise self.fail("chained comparison is not allowed")
        return node

    def parse_additive(self) -> Node:
        node = self.parse_multiplicative()
        while self.at_op("+", "-"):
            tok = self.advance()
            right = self.parse_multiplicative()
            node = self.node(Binary(tok.text, node, right), tok, node, right)
        return node

    def parse_multiplicative(self) -> Node:
        node = self.parse_unary()
        while self.at_op("*", "/"):
            tok = self.advance()
            right = self.parse_unary()
            node = self.node(Binary(tok.text, node, right), tok, node, right)
        return node

    def parse_unary(self) -> Node:
        if self.at_op("!", "-"):
            tok = self.advance()
            self.enter(tok)
            operand = self.parse_unary()
            self.leave()
            return self.node(Unary(tok.text, operand), tok, operand)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.peek()
        kind = tok.kind
        if kind in ("int", "float", "str"):
            self.advance()
            return Literal(tok.value)
        if kind == "kw":
            if tok.text == "in":
                raise self.fail("missing operand before 'in'")
            self.advance()
            return Literal({"true": True, "false": False}.get(tok.text))
        if kind in ("ident", "hash"):
            self.advance()
            path = [tok.text]
            while self.at_op("."):
                self.advance()
                nxt = self.peek()
                if nxt.kind != "ident":
                    raise self.fail("expected field name after '.'")
                self.advance()
                path.append(nxt.text)
            return Reference(tuple(path), hashed=kind == "hash")
        if kind == "func":
            self.advance()
            self.expect("(", "'(' after function name")
            self.enter(tok)
            args = [self.parse_or()]
            while self.at_op(","):
                self.advance()
                args.append(self.parse_or())
            if not self.at_op(")"):
                raise self.fail("expected ')' closing the call")
            self.advance()
            self.leave()
            if len(args) != _FUNCTIONS[tok.text]:
                raise self.fail(
                    f"{tok.text}() takes {_FUNCTIONS[tok.text]} argument(s), got {len(args)}", tok
                )
            return self.node(Call(tok.text, tuple(args)), tok, *args)
        if kind == "op" and tok.text == "(":
            self.advance()
            self.enter(tok)
            node = self.parse_or()
            if not self.at_op(")"):
                raise self.fail("unbalanced parenthesis: expected ')'")
            self.advance()
            self.leave()
            return node
        if kind == "op" and tok.text == "${":
            self.advance()
            self.enter(tok)
            node = self.parse_or()
            if not self.at_op("}"):
                raise self.fail("unterminated '${': expected '}'")
            self.advance()
            self.leave()
            return node
        if kind == "eof":
            raise self.fail("missing operand at end of expression")
        raise self.fail(f"missing operand before {tok.text!r}")


def parse_expression(source: str) -> Node:
    """Parse ``source`` into an AST; raises :class:`ExpressionSyntaxError`.

    Longer or deeper expressions than the limits of ``_limits`` raise its subclass
    :class:`ExpressionLimitError`, so parsing, compiling and evaluating never exhaust the stack.
    """
    return _Parser(source).parse()


# --------------------------------------------------------------------------------------------
# Printer

_BINARY_PREC: Final = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "in": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}
_UNARY_PREC: Final = 7
_FLOAT_LITERAL_RE: Final = re.compile(r"[0-9]+\.[0-9]+")


def _format_float(value: float) -> str:
    if not math.isfinite(value) or math.copysign(1.0, value) < 0:
        raise ValueError(f"float {value!r} has no literal form")
    text = repr(value)
    if not _FLOAT_LITERAL_RE.fullmatch(text):
        # Exponent form: spell the same shortest digits in positional notation.
        text = format(decimal.Decimal(text), "f")
    return text if "." in text else text + ".0"


def _print_literal(value: bool | int | float | str | None) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative literals do not exist; use unary minus")
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError("a string literal cannot contain both quote characters")


def print_expression(node: Node) -> str:
    """Render an AST as source text that parses back to the same AST."""
    return _print(node, 0)


def _print(node: Node, min_prec: int) -> str:
    if isinstance(node, Literal):
        return _print_literal(node.value)
    if isinstance(node, Reference):
        return ("#" if node.hashed else "") + ".".join(node.path)
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_print(a, 0) for a in node.args)})"
    if isinstance(node, Unary):
        text = node.op + _print(node.operand, _UNARY_PREC)
        prec = _UNARY_PREC
    else:
        prec = _BINARY_PREC[node.op]
        left_min = prec + 1 if prec == 4 else prec
        text = f"{_print(node.left, left_min)} {node.op} {_print(node.right, prec + 1)}"
    return f"({text})" if prec < min_prec else text


# --------------------------------------------------------------------------------------------
# Values

Variables: TypeAlias = Mapping[str, Any]
_Fn: TypeAlias = Callable[[Variables], Any]


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float


def _scalar_equal(a: Any, b: Any) -> bool | None:
    """Equality of two values when at least one is a scalar; None for two containers."""
    ta = type(a)
    tb = type(b)
    if ta is tb and (ta is str or ta is int or ta is bool or ta is float):
        return bool(a == b)
    if a is None or b is None:
        return a is None and b is None
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return None
    return False


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of expressions.md section 4 (numbers by value, other types never equal).

    Iterative, so values nested arbitrarily deep compare without exhausting the stack.
    """
    pending: list[tuple[Any, Any]] = [(a, b)]
    while pending:
        x, y = pending.pop()
        same = _scalar_equal(x, y)
        if same is False:
            return False
        if same is True:
            continue
        if isinstance(x, Mapping):
            if x.keys() != y.keys():
                return False
            pending.extend((x[k], y[k]) for k in x)
        else:
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
    return True


def to_stored_value(value: Any) -> Any:
    """Apply the storage rule: an integral float below 2**53 in magnitude becomes an int."""
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _type_error(op: str, a: Any, b: Any) -> ExpressionEvaluationError:
    return ExpressionEvaluationError(
        f'type error: cannot apply "{op}" to {type_name(a)} and {type_name(b)}'
    )


def _check_int(value: int) -> int:
    if value < INT64_MIN or value > INT64_MAX:
        raise ExpressionEvaluationError("integer overflow")
    return value


def _check_float(value: float) -> float:
    if not math.isfinite(value):
        raise ExpressionEvaluationError("numeric overflow")
    return value


def _membership(x: Any, c: Any, op: str) -> bool:
    if isinstance(c, list | tuple):
        return any(json_equal(x, e) for e in c)
    if isinstance(c, Mapping):
        if type(x) is not str:
            raise _type_error(op, x, c)
        return x in c
    if c is None:
        return False
    raise _type_error(op, x, c)


# --------------------------------------------------------------------------------------------
# Compiler: AST -> closure


def _compile_binary(node: Binary) -> _Fn:
    op = node.op
    lf = _compile(node.left)
    rf = _compile(node.right)

    if op in ("&&", "||"):
        # Short-circuit: "&&" stops at false, "||" at true; both operands must be booleans.
        stop = op == "||"

        def logical(v: Variables) -> Any:
            a = lf(v)
            if a is stop:
                return stop
            if a is not (not stop):
                raise ExpressionEvaluationError(f'type error: "{op}" operand is {type_name(a)}')
            b = rf(v)
            if b is True or b is False:
                return b
            raise ExpressionEvaluationError(f'type error: "{op}" operand is {type_name(b)}')

        return logical
    if op == "==":
        return lambda v: json_equal(lf(v), rf(v))
    if op == "!=":
        return lambda v: not json_equal(lf(v), rf(v))
    if op in _RELATIONAL:
        return _compile_relational(op, lf, rf)
    if op == "in":
        return lambda v: _membership(lf(v), rf(v), "in")
    return _compile_arithmetic(op, lf, rf)


def _compile_relational(op: str, lf: _Fn, rf: _Fn) -> _Fn:
    cmp: Callable[[Any, Any], bool] = {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }[op]

    def relational(v: Variables) -> bool:
        a = lf(v)
        b = rf(v)
        ta = type(a)
        tb = type(b)
        if ((ta is int or ta is float) and (tb is int or tb is float)) or (ta is str and tb is str):
            return cmp(a, b)
        raise _type_error(op, a, b)

    return relational


def _compile_arithmetic(op: str, lf: _Fn, rf: _Fn) -> _Fn:
    def arithmetic(v: Variables) -> Any:
        a = lf(v)
        b = rf(v)
        ta = type(a)
        tb = type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            if op == "/":
                if b == 0:
                    raise ExpressionEvaluationError("division by zero")
                return _check_float(a / b)
            if op == "+":
                r = a + b
            elif op == "-":
                r = a - b
            else:
                r = a * b
            return _check_int(r) if type(r) is int else _check_float(r)
        if op == "+" and ta is str and tb is str:
            return a + b
        raise _type_error(op, a, b)

    return arithmetic


def _compile_reference(node: Reference) -> _Fn:
    root = node.path[0]
    fields = node.path[1:]
    if not fields:
        # Roots are checked before evaluation; a missing root here means lenient mode.
        return lambda v: v.get(root)

    def reference(v: Variables) -> Any:
        value = v.get(root)
        for field in fields:
            if isinstance(value, Mapping):
                value = value.get(field)
            else:
                raise ExpressionEvaluationError(
                    f'type error: cannot read field "{field}" of {type_name(value)}'
                )
        return value

    return reference


def _compile(node: Node) -> _Fn:
    if isinstance(node, Literal):
        value = node.value
        return lambda v: value
    if isinstance(node, Reference):
        return _compile_reference(node)
    if isinstance(node, Unary):
        of = _compile(node.operand)
        if node.op == "!":

            def not_(v: Variables) -> bool:
                a = of(v)
                if a is True or a is False:
                    return not a
                raise ExpressionEvaluationError(f'type error: "!" operand is {type_name(a)}')

            return not_

        def neg(v: Variables) -> Any:
            a = of(v)
            t = type(a)
            if t is int:
                return _check_int(-a)
            if t is float:
                return -a
            raise ExpressionEvaluationError(f'type error: unary "-" operand is {type_name(a)}')

        return neg
    if isinstance(node, Call):
        if node.name == "len":
            af = _compile(node.args[0])

            def len_(v: Variables) -> int:
                a = af(v)
                if isinstance(a, str | list | tuple | Mapping):
                    return len(a)
                raise ExpressionEvaluationError(f"type error: len() of {type_name(a)}")

            return len_
        cf = _compile(node.args[0])
        xf = _compile(node.args[1])
        return lambda v: _membership(xf(v), cf(v), "contains")
    return _compile_binary(node)


def iter_nodes(node: Node) -> Iterator[Node]:
    """Pre-order traversal (left to right in source order)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, Unary):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack.extend((current.right, current.left))
        elif isinstance(current, Call):
            stack.extend(reversed(current.args))


_BOOLEAN_BINARY: Final = frozenset({"||", "&&", "==", "!=", "<", "<=", ">", ">=", "in"})


def can_be_boolean(node: Node) -> bool:
    """Top-level form check of rule ``DECISION_EXPR_NON_BOOLEAN``."""
    if isinstance(node, Literal):
        return node.value is True or node.value is False
    if isinstance(node, Reference):
        return True
    if isinstance(node, Unary):
        return node.op == "!"
    if isinstance(node, Call):
        return node.name == "contains"
    return node.op in _BOOLEAN_BINARY


class CompiledExpression:
    """A parsed and compiled expression; evaluate it any number of times."""

    __slots__ = ("_fn", "_roots", "ast", "roots", "source")

    def __init__(self, source: str, ast: Node) -> None:
        self.source = source
        self.ast = ast
        roots: list[str] = []
        for node in iter_nodes(ast):
            if isinstance(node, Reference) and node.path[0] not in roots:
                roots.append(node.path[0])
        #: Root variable names referenced, in source order.
        self.roots: tuple[str, ...] = tuple(roots)
        self._roots = self.roots
        self._fn = _compile(ast)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    @property
    def can_be_boolean(self) -> bool:
        return can_be_boolean(self.ast)

    def evaluate(self, variables: Variables) -> Any:
        """Evaluate in value context; raises :class:`ExpressionEvaluationError`.

        The result keeps the int/float distinction (``4 / 2`` is ``2.0``); apply
        :func:`to_stored_value` before writing it to the instance variables.
        """
        for root in self._roots:
            if root not in variables:
                raise ExpressionEvaluationError(f'undefined variable "{root}"', self.source)
        try:
            return self._fn(variables)
        except ExpressionEvaluationError as exc:
            if exc.source is None:
                raise ExpressionEvaluationError(exc.detail, self.source) from None
            raise
        except RecursionError:  # pragma: no cover - the parser's limits keep the stack small
            raise ExpressionEvaluationError("expression nested too deeply", self.source) from None

    def evaluate_lenient(self, variables: Variables) -> Any:
        """Lenient mode (decision-table inputs): an undefined root variable is ``null``."""
        try:
            return self._fn(variables)
        except ExpressionEvaluationError as exc:
            if exc.source is None:
                raise ExpressionEvaluationError(exc.detail, self.source) from None
            raise
        except RecursionError:  # pragma: no cover - the parser's limits keep the stack small
            raise ExpressionEvaluationError("expression nested too deeply", self.source) from None

    def evaluate_bool(self, variables: Variables) -> bool:
        """Evaluate in boolean context; a non-boolean result raises :class:`NonBooleanResult`."""
        result = self.evaluate(variables)
        if result is True or result is False:
            return result
        raise NonBooleanResult(self.source, type_name(result))


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> CompiledExpression:
    """Parse and compile ``source`` (cached); raises :class:`ExpressionSyntaxError`.

    Never raises anything else for any string: a ``RecursionError`` (only possible when the
    caller's own stack is nearly exhausted) is reported as an :class:`ExpressionLimitError`.
    """
    try:
        return CompiledExpression(source, parse_expression(source))
    except RecursionError:
        raise ExpressionLimitError(source, "expression nested too deeply", 0, "nesting") from None
