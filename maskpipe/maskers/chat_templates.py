"""Chat templates for ``loss_mask``: render a conversation to text and say which characters carry
loss.

Templates are Jinja, rendered the way Hugging Face ``transformers`` renders ``chat_template``: a
sandboxed, immutable environment with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols``
extension, a ``tojson`` filter with the same arguments (``ensure_ascii``, ``indent``,
``separators``, ``sort_keys``; no HTML escaping), the globals ``raise_exception``,
``strftime_now``, ``dict`` and ``namespace`` (no underscore attributes), the variables
``messages``, ``tools``, ``documents``, ``add_generation_prompt`` (False: training text) and the
tokenizer's special tokens (``bos_token``, ``eos_token``, ...). One difference on purpose:
``strftime_now`` formats a fixed date (``template_date``), never the clock, so output bytes do not
change from day to day.

Which characters are trained:

* A template with ``{% generation %} ... {% endgeneration %}`` blocks: the characters those blocks
  render, exactly as ``apply_chat_template(..., return_assistant_tokens_mask=True)`` tracks them.
  The built-in ``chatml`` and ``plain`` templates are such templates; they wrap the turns whose
  role is in ``train_on`` (a template variable) in generation blocks.
* A template without generation blocks: the content of each message whose role is in
  ``train_on``. Each such content is rendered once more between two reserved code points
  (U+FDD0, U+FDD1, Unicode noncharacters) around its stripped text; their positions give the
  spans, and the marked render with the markers removed must equal the plain render (else the
  template changed the content and the row is bad: ``template_alters_content``).
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, field

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
OPEN, CLOSE = "\ufdd0", "\ufdd1"
_MARKERS = re.compile(f"[{OPEN}{CLOSE}]")
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_REASONING = ("reasoning_content", "thinking", "reasoning")

# Built-in templates. ``train_on`` (a list of roles) is passed to every template.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] in train_on %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
)
PLAIN = (
    "{% for message in messages %}"
    "{% if message['role'] in train_on %}"
    "{% generation %}{{ message['content'] }}{{ eos_token or '' }}{% endgeneration %}"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% endfor %}"
)
BUILTIN = {"chatml": CHATML, "plain": PLAIN}


class RowError(Exception):
    """A conversation that cannot be rendered; ``reason`` is the bad-record code (never data)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TemplateFileError(Exception):
    """A template file that cannot be used; the message names the file and the fix."""


@dataclass
class _Track:
    pos: int = 0
    spans: list = field(default_factory=list)


def _environment(date: _dt.date):
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}``: record the [start, end) characters its body renders."""

        tags = {"generation"}

        def __init__(self, environment):
            super().__init__(environment)
            self.track: ContextVar = ContextVar("maskpipe_generation", default=None)
            environment.extend(generation_track=self.track)

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

        def _mark(self, caller):
            text = caller()
            st = self.track.get()
            if st is not None:  # output before this block has been yielded: st.pos counts it
                st.spans.append((st.pos, st.pos + len(text)))
            return text

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return _dt.datetime.combine(date, _dt.time()).strftime(fmt)

    class TemplateDict:
        """``dict(...)`` and ``dict.fromkeys(...)`` without exposing the type itself."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class Namespace(jinja2.utils.Namespace):
        """Jinja's namespace, refusing underscore attributes (no route to interpreter internals)."""

        def __init__(*args, **kwargs):
            self, rest = args[0], args[1:]
            attrs = dict(*rest, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError("chat templates cannot set underscore attributes on a namespace")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now, dict=TemplateDict(),
                       namespace=Namespace)
    return env


@functools.lru_cache(maxsize=16)
def compile_template(source: str, date: str):
    """Compile once per process (cache key: the template text and the fixed date)."""
    return _environment(_dt.date.fromisoformat(date)).from_string(source)


def normalize_message(message) -> dict:
    """A message as the template sees it (transformers' normalisation): keys whose value is None are
    dropped, and a reasoning text given as ``reasoning_content``, ``thinking`` or ``reasoning`` is
    offered under the first two names too."""
    if not isinstance(message, dict):
        raise RowError("message_not_object")
    m = {k: v for k, v in message.items() if v is not None}
    role = m.get("role")
    if not isinstance(role, str) or not role:
        raise RowError("missing_role")
    reasoning = next((m[k] for k in _REASONING if m.get(k) is not None), None)
    if reasoning is not None:
        m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
    return m


class ChatTemplate:
    """A compiled template plus the variables it gets.

    Args:
        source: the Jinja text.
        variables: special tokens and other template variables (``eos_token``, ...).
        date: ISO date ``strftime_now`` formats.
    """

    def __init__(self, source: str, variables: dict, date: str):
        self.source = source
        self.tagged = GENERATION_TAG.search(source) is not None
        self.template = compile_template(source, date)
        self.variables = dict(variables)

    def _render(self, messages: list, train_on: list[str], track: _Track | None) -> str:
        import jinja2

        kw = dict(self.variables, messages=messages, tools=None, documents=None, add_generation_prompt=False,
                  train_on=list(train_on))
        try:
            if track is None:
                return self.template.render(**kw)
            tracker = self.template.environment.generation_track
            token = tracker.set(track)
            try:
                parts = []
                for block in self.template.generate(**kw):
                    parts.append(block)
                    track.pos += len(block)
                return "".join(parts)
            finally:
                tracker.reset(token)
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError):
            raise RowError("template_error") from None

    def render(self, messages: list, train_on: list[str]) -> tuple[str, list[tuple[int, int]]]:
        """(text, trained character spans in order) for one conversation of normalised messages."""
        if self.tagged:
            track = _Track()
            text = self._render(messages, train_on, track)
            return text, track.spans
        marked, k = [], 0
        for m in messages:
            c = m.get("content")
            if isinstance(c, str) and _MARKERS.search(c):
                raise RowError("reserved_character")
            if m["role"] in train_on and isinstance(c, str) and c.strip():
                core = c.strip()
                lead = c[:len(c) - len(c.lstrip())]
                m = {**m, "content": lead + OPEN + core + CLOSE + c[len(lead) + len(core):]}
                k += 1
            marked.append(m)
        text = self._render(messages, train_on, None)
        if not k:
            return text, []
        with_marks = self._render(marked, train_on, None)
        spans, removed, opened = [], 0, None
        for hit in _MARKERS.finditer(with_marks):  # one match per marker: two per trained message
            at = hit.start() - removed
            removed += 1
            if hit.group() == OPEN and opened is None:
                opened = at
            elif hit.group() == CLOSE and opened is not None:
                spans.append((opened, at))
                opened = None
            else:
                raise RowError("template_alters_content")
        if opened is not None or len(spans) != k or _MARKERS.sub("", with_marks) != text:
            raise RowError("template_alters_content")
        return text, spans


def _token_text(v) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):  # a serialised AddedToken
        return v["content"]
    return None


def load_template_file(path: str) -> tuple[str, dict]:
    """(template source, special-token variables) from a ``tokenizer_config.json`` (its
    ``chat_template``: a string, or a list of ``{name, template}`` from which ``default`` is taken;
    else a ``chat_template.jinja`` next to it) or from a ``.jinja`` file (special tokens then come
    from a ``tokenizer_config.json`` beside it, if any).

    Raises:
        TemplateFileError: with a one-line message naming the file.
    """
    folder = os.path.dirname(path)
    config: dict = {}
    source = None
    try:
        if path.endswith(".jinja"):
            with open(path, encoding="utf-8") as f:
                source = f.read()
            sibling = os.path.join(folder, "tokenizer_config.json")
            if os.path.isfile(sibling):
                with open(sibling, encoding="utf-8") as f:
                    config = json.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
    except FileNotFoundError:
        raise TemplateFileError(f"template.path: file not found: {path}; point it at a tokenizer_config.json "
                                "or a .jinja chat template") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise TemplateFileError(f"template.path: cannot read {path} as UTF-8 JSON; "
                                "point it at a tokenizer_config.json or a .jinja chat template") from None
    if not isinstance(config, dict):
        raise TemplateFileError(f"template.path: {path} does not hold a JSON object (a tokenizer_config.json)")
    if source is None:
        ct = config.get("chat_template")
        if isinstance(ct, list):
            ct = next((t.get("template") for t in ct if isinstance(t, dict) and t.get("name") == "default"), None)
        if ct is None and os.path.isfile(os.path.join(folder, "chat_template.jinja")):
            with open(os.path.join(folder, "chat_template.jinja"), encoding="utf-8") as f:
                ct = f.read()
        if not isinstance(ct, str):
            raise TemplateFileError(f"template.path: {path} has no chat_template (a string, or a list with a "
                                    "'default' entry); add one or use template: chatml")
        source = ct
    variables = {k: t for k in SPECIAL_TOKEN_KEYS if (t := _token_text(config.get(k))) is not None}
    return source, variables


def check_source(source: str, date: str) -> str | None:
    """None when ``source`` compiles, else a one-line problem with the template line."""
    import jinja2

    try:
        compile_template(source, date)
    except jinja2.TemplateSyntaxError as e:
        return f"the chat template does not compile (template line {e.lineno}); fix its Jinja syntax"
    return None
