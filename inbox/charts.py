"""Small server-rendered SVG bar charts (no JavaScript, no library): one bar per bucket."""

from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _


def bar_chart_svg(values: list[int], *, label: str, width: int = 336, height: int = 36, color: str = "#2563eb") -> str:
    """``values`` oldest first; bars scaled to the largest value; each bar has a <title> for hovering."""
    n = max(1, len(values))
    peak = max(values) if values else 0
    bar_w = width / n
    bars = []
    for i, v in enumerate(values):
        if not v:
            continue
        h = max(1.0, (v / peak) * (height - 2))
        bars.append(f'<rect x="{i * bar_w:.2f}" y="{height - h:.2f}" width="{max(bar_w - 0.5, 0.5):.2f}" '
                    f'height="{h:.2f}" fill="{color}"><title>{v}</title></rect>')
    total = sum(values)
    title = escape(_("%(label)s: %(total)s in total, at most %(peak)s in one hour")
                   % {"label": label, "total": total, "peak": peak})
    return mark_safe(  # noqa: S308 - every interpolated value is a number or escaped
        f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="#d1d5db" stroke-width="1"/>'
        + "".join(bars) + "</svg>")
