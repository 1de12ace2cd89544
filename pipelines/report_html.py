"""The run report's page: one Jinja2 template with inline CSS, so the file needs nothing else to open.

Tables arrive as HTML pandas escaped; every other value is escaped here (autoescape).
"""

from __future__ import annotations

import jinja2

PAGE = """<!DOCTYPE html>
<html lang="{{ 'zh-CN' if lang == 'zh' else 'en' }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ words.title }} {{ facts[0][1] }}</title>
<style>
  body { font-family: "Noto Sans", "DejaVu Sans", "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei",
         "PingFang SC", sans-serif; margin: 0; color: #1d2733; background: #f5f7fa; }
  header { background: #1f5f99; color: #fff; padding: 18px 32px; }
  header h1 { margin: 0 0 8px; font-size: 22px; }
  header dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 0; font-size: 13px; }
  header dt { opacity: .75; } header dd { margin: 0; font-weight: 600; }
  nav { padding: 10px 32px; font-size: 13px; background: #fff; border-bottom: 1px solid #dde3ea; }
  nav a { margin-right: 14px; color: #1f5f99; text-decoration: none; white-space: nowrap; }
  main { padding: 8px 32px 32px; max-width: 1400px; }
  section { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; margin: 16px 0; padding: 12px 20px 16px; }
  h2 { font-size: 17px; margin: 4px 0 10px; } h3 { font-size: 14px; margin: 14px 0 6px; color: #44505c; }
  p.note { background: #fff6e0; border-left: 4px solid #ef9f00; padding: 6px 10px; font-size: 13px; }
  p.caption { color: #55606b; font-size: 12.5px; max-width: 70em; }
  table.grid { border-collapse: collapse; font-size: 12.5px; margin: 4px 0; }
  table.grid th, table.grid td { border-bottom: 1px solid #e4e8ee; padding: 4px 10px; text-align: left;
                                 font-variant-numeric: tabular-nums; }
  table.grid th { background: #eef2f6; }
  div.plots { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
  figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eef0f3; }
  figcaption { font-size: 12px; color: #55606b; }
  footer { font-size: 12px; color: #6b7580; padding: 0 32px 24px; }
</style>
</head>
<body>
<header>
  <h1>{{ words.title }}</h1>
  <dl>{% for name, value in facts %}<div><dt>{{ name }}</dt><dd>{{ value }}</dd></div>{% endfor %}</dl>
</header>
<nav aria-label="{{ words.contents }}">{% for s in sections %}<a href="#{{ s.key }}">{{ s.title }}</a>
{% endfor %}</nav>
<main>
{% for s in sections %}
<section id="{{ s.key }}" data-section="{{ s.key }}">
  <h2>{{ s.title }}</h2>
  {% for note in s.notes %}<p class="note">{{ note }}</p>{% endfor %}
  {% for heading, table in s.tables %}{% if heading %}<h3>{{ heading }}</h3>{% endif %}{{ table | safe }}{% endfor %}
  {% if s.images %}<div class="plots">{% for alt, src in s.images %}
    <figure><img src="{{ src }}" alt="{{ alt }}"><figcaption>{{ alt }}</figcaption></figure>{% endfor %}
  </div>{% endif %}
  {% for caption in s.captions %}<p class="caption">{{ caption }}</p>{% endfor %}
</section>
{% endfor %}
</main>
<footer>{{ words.footer }}</footer>
</body>
</html>
"""

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(PAGE)


def render_page(*, lang: str, words: dict, facts: list[tuple[str, str]], sections: list) -> str:
    """The page's HTML for the given sections (pipelines.report.Section)."""
    return _TEMPLATE.render(lang=lang, words=words, facts=facts, sections=sections)
