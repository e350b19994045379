"""Run-settings forms (a generation run, a training round): Django forms built from a list of
fields, whose errors read as the form labels the fields, and onto which a service's refusal
(`Invalid.fields`, from the engine's ConfigError) is mapped field by field, with no message parsing."""
from __future__ import annotations

import math
from dataclasses import dataclass

from django import forms

from webapp.refusals import Invalid


@dataclass(frozen=True)
class Setting:
    name: str
    label: str
    kind: type  # int, float or str
    help: str = ""
    low: float | None = None  # checked here; everything else by the config dataclass
    high: float | None = None
    group: str = ""  # where the value goes in the settings dict ("" = top level)
    optional: bool = False  # left empty (or not sent): the config's default applies
    blank: bool = False  # text that may be left empty on purpose (empty is the value, e.g. "none")
    key: str = ""  # its name in the settings dict when the form's name differs (two groups share a name)
    choices: tuple[str, ...] = ()  # a text setting drawn as a select of these values


def _number_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def form_field(setting: Setting) -> forms.Field:
    label = setting.label
    messages = {"required": f"{label} is empty"}
    if setting.choices:
        messages["invalid_choice"] = f"{label} must be one of {', '.join(setting.choices)}"
        return forms.ChoiceField(label=label, choices=[(c, c) for c in setting.choices], error_messages=messages,
                                 required=not setting.optional)
    if setting.kind is str:
        return forms.CharField(label=label, error_messages=messages, required=not (setting.optional or setting.blank))
    messages["invalid"] = f"{label} must be {'a whole number' if setting.kind is int else 'a number'}"
    if setting.low is not None:
        messages["min_value"] = f"{label} must be at least {_number_text(setting.low)}"
    if setting.high is not None:
        messages["max_value"] = f"{label} must be at most {_number_text(setting.high)}"
    field_class = forms.IntegerField if setting.kind is int else forms.FloatField
    return field_class(label=label, min_value=setting.low, max_value=setting.high, error_messages=messages,
                       required=not setting.optional)


class SettingsForm(forms.Form):
    """Subclasses set SETTINGS; the fields are made from them in that order."""

    SETTINGS: tuple[Setting, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for setting in self.SETTINGS:
            self.fields[setting.name] = form_field(setting)

    def clean(self):
        data = super().clean()
        for name, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.add_error(name, self.fields[name].error_messages["invalid"])
        return data

    def settings(self) -> dict:
        """The cleaned values, nested by each setting's group."""
        values: dict = {}
        for setting in self.SETTINGS:
            value = self.cleaned_data[setting.name]
            if setting.optional and value in (None, ""):
                continue
            target = values.setdefault(setting.group, {}) if setting.group else values
            target[setting.key or setting.name] = value
        return values

    def refused_by(self, exc: Invalid) -> None:
        """A service's refusal of the values: each message on its field (a message that starts with the
        field's name gets the field's label instead), the rest on the form."""
        if not exc.fields:
            self.add_error(None, exc.reason)
            return
        for name, message in exc.fields.items():
            if name in self.fields:
                if message.startswith(name):
                    message = self.fields[name].label + message[len(name):]
                self.add_error(name, message[:1].upper() + message[1:])
            else:
                self.add_error(None, message[:1].upper() + message[1:])

    def error_text(self) -> str:
        """Every error, in the order of the fields, as one line for the alert above the form."""
        order = [None, *self.fields]
        messages = []
        for name in sorted(self.errors, key=lambda n: order.index(n) if n in order else len(order)):
            messages += [str(m) for m in self.errors[name]]
        return "; ".join(dict.fromkeys(messages))

    def typed(self) -> dict:
        """What was typed, to put back in the form."""
        return {name: self.data.get(name, "") for name in self.fields}

    def rows(self, values: dict) -> list[dict]:
        """The fields as the templates draw them."""
        rows = []
        for setting in self.SETTINGS:
            low = setting.low
            if low is None and setting.kind is not str:
                low = 0 if setting.kind is float else 1
            rows.append({"name": setting.name, "label": setting.label, "help": setting.help,
                         "kind": setting.kind.__name__, "value": values.get(setting.name, ""), "min": low,
                         "max": setting.high, "step": "any" if setting.kind is float else "1",
                         "group": setting.group or "gate", "optional": setting.optional,
                         "choices": setting.choices})
        return rows
