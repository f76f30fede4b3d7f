"""The dashboard's look: one theme, one stylesheet, and the annotator's keyboard shortcuts.

Fonts are the ones Gradio serves itself (no web-font fetch: studios often run offline). Colours
follow the login page (orange accent on slate); status colours are shared by badges, tables and
alarms so a glance at any page reads the same.
"""

from __future__ import annotations


def theme():
    import gradio as gr

    return gr.themes.Default(primary_hue="orange", secondary_hue="slate", neutral_hue="slate",
                             radius_size="md", text_size="md", spacing_size="md").set(
        body_background_fill="#f6f7f9",
        block_border_width="1px",
        block_shadow="0 1px 2px rgba(15, 23, 42, 0.04)",
        block_title_text_weight="600",
        button_primary_background_fill="#ea580c",
        button_primary_background_fill_hover="#c2410c",
        button_primary_text_color="#ffffff",
        input_background_fill="#ffffff",
    )


# The header bar. The studio's header is written into the page's HTML by the server (app/ui/__init__.py), so
# it shows before Gradio's scripts have run: its rules travel inline with it, and in CSS for the annotator app.
HEADER_CSS = """
.gad-header { display: flex; align-items: center; justify-content: space-between; padding: 10px 4px 6px;
              font-family: "Source Sans Pro", system-ui, sans-serif; }
body > .gad-header { width: 100%; max-width: 1480px; margin: 0 auto; padding: 10px 16px 0; box-sizing: border-box;
                     gap: 16px; }
.gad-brand { font-size: 1.25rem; font-weight: 700; color: #0f172a; letter-spacing: -0.01em; }
.gad-brand small { font-weight: 400; color: #64748b; font-size: 0.85rem; margin-left: 10px; }
.gad-user { color: #475569; font-size: 0.9rem; }
.gad-user a { color: #ea580c; text-decoration: none; margin-left: 12px; font-weight: 600; }
.gad-user .role { background: #e2e8f0; border-radius: 10px; padding: 1px 8px; margin-left: 6px; font-size: 0.78rem; }
"""

CSS = HEADER_CSS + """
.gradio-container { max-width: 1480px !important; width: 100% !important; margin: 0 auto !important;
                     padding-top: 0 !important; }
.sticky-side { position: sticky; top: 8px; align-self: flex-start; }
/* Gradio's data tables: the page's font, not a monospace one */
.gradio-container .body-cell, .gradio-container .body-cell span, .gradio-container .header-cell,
.gradio-container .header-cell span { font-family: var(--font) !important; }
footer { display: none !important; }
/* section titles and hints */
.gad-h { font-size: 1.02rem; font-weight: 650; color: #0f172a; margin: 2px 0 2px; }
.gad-hint { color: #64748b; font-size: 0.86rem; }
.gad-hint code, .gad-md code { font-size: 0.82rem; }
/* status badges */
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 0.78rem; font-weight: 600;
         line-height: 1.6; white-space: nowrap; }
.st-queued { background: #e2e8f0; color: #334155; }
.st-running { background: #dbeafe; color: #1d4ed8; }
.st-succeeded { background: #dcfce7; color: #15803d; }
.st-failed { background: #fee2e2; color: #b91c1c; }
.st-cancelled { background: #f1f5f9; color: #64748b; }
.st-interrupted { background: #fef3c7; color: #b45309; }
.st-draft, .st-review { background: #fef3c7; color: #b45309; }
.st-open { background: #dcfce7; color: #15803d; }
.st-closed { background: #f1f5f9; color: #64748b; }
.st-admin { background: #ffedd5; color: #c2410c; }
.st-researcher { background: #e0f2fe; color: #0369a1; }
.st-annotator { background: #ede9fe; color: #6d28d9; }
/* stat cards */
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 8px 14px; min-width: 110px; }
.card .k { color: #64748b; font-size: 0.76rem; text-transform: uppercase; letter-spacing: 0.04em; }
.card .v { color: #0f172a; font-size: 1.15rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .s { color: #64748b; font-size: 0.78rem; }
/* progress bars */
.pbar { background: #e2e8f0; border-radius: 6px; height: 8px; overflow: hidden; min-width: 80px; }
.pbar > div { background: #ea580c; height: 100%; }
.pbar.done > div { background: #16a34a; }
.pbar.indet > div { width: 30% !important; animation: gad-slide 1.2s infinite ease-in-out; }
@keyframes gad-slide { 0% { margin-left: -30%; } 100% { margin-left: 100%; } }
/* alarms and messages */
.alarm { border-left: 4px solid #dc2626; background: #fef2f2; color: #7f1d1d; padding: 7px 12px;
         border-radius: 6px; margin: 4px 0; font-size: 0.9rem; }
.alarm b { text-transform: uppercase; font-size: 0.75rem; letter-spacing: 0.05em; margin-right: 6px; }
.okbox { border-left: 4px solid #16a34a; background: #f0fdf4; color: #14532d; padding: 7px 12px; border-radius: 6px;
         font-size: 0.9rem; }
.errbox { border-left: 4px solid #dc2626; background: #fef2f2; color: #7f1d1d; padding: 8px 12px; border-radius: 6px;
          font-size: 0.9rem; white-space: pre-wrap; font-family: ui-monospace, monospace; }
.note { border-left: 4px solid #f59e0b; background: #fffbeb; color: #78350f; padding: 6px 12px; border-radius: 6px;
        font-size: 0.86rem; margin: 3px 0; }
/* tables rendered as HTML (selectors strong enough to win over Gradio's prose table style) */
.gradio-container table.gad { border-collapse: collapse; width: 100%; font-size: 0.88rem; margin: 0;
                              font-variant-numeric: tabular-nums; border: none; }
.gradio-container table.gad th { text-align: left; color: #475569; font-weight: 600; border: none;
    border-bottom: 2px solid #e2e8f0; padding: 6px 10px; background: #f8fafc; position: sticky; top: 0; }
.gradio-container table.gad td { border: none; border-bottom: 1px solid #eef2f6; padding: 6px 10px;
    vertical-align: top; background: #fff; }
.gradio-container table.gad tr, .gradio-container table.gad thead, .gradio-container table.gad tbody { border: none; }
.gradio-container table.gad td.num, .gradio-container table.gad th.num { text-align: right; }
.gradio-container table.gad tr:hover td { background: #fff7ed; }
.gradio-container table.gad .muted { color: #94a3b8; }
.tablewrap { max-height: 460px; overflow: auto; border: 1px solid #e2e8f0; border-radius: 8px; background: #fff; }
/* rollouts */
.rollout-prompt, .rollout-teacher { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 12px;
    white-space: pre-wrap; font-size: 0.9rem; margin-bottom: 8px; max-height: 220px; overflow: auto; }
.rollout-teacher { border-left: 4px solid #0f766e; }
.rollout-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.pair-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.student { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 12px; font-size: 0.88rem; }
.student.best { border: 2px solid #16a34a; background: #f0fdf4; }
.student.worst { border: 2px solid #dc2626; background: #fef2f2; }
.student .meta { display: flex; flex-wrap: wrap; gap: 2px 12px; color: #475569; font-size: 0.78rem; margin-bottom: 4px;
                 align-items: center; }
.student .tag { border-radius: 999px; padding: 0 8px; font-weight: 700; text-transform: uppercase; font-size: 0.68rem; }
.student .tag.best { background: #16a34a; color: #fff; }
.student .tag.worst { background: #dc2626; color: #fff; }
.student .text { white-space: pre-wrap; max-height: 200px; overflow: auto; }
.lbl { font-size: 0.74rem; text-transform: uppercase; letter-spacing: 0.05em; color: #64748b; font-weight: 650;
       margin: 4px 0 2px; }
/* log tail */
.logtail textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace !important;
                   font-size: 0.8rem !important; }
/* annotator view */
.ann-prompt { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 12px 16px; font-size: 1rem;
              white-space: pre-wrap; }
.ann-resp { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 12px 16px; white-space: pre-wrap;
            min-height: 180px; max-height: 52vh; overflow: auto; font-size: 0.95rem; }
.ann-side { font-weight: 700; color: #334155; margin-bottom: 4px; }
.kbd { display: inline-block; border: 1px solid #cbd5e1; border-bottom-width: 2px; border-radius: 4px; padding: 0 5px;
       font-size: 0.75rem; font-family: ui-monospace, monospace; color: #334155; background: #f8fafc;
       margin-left: 4px; }
.leak { background: #fde68a; padding: 0 2px; border-radius: 3px; }
/* the chat columns */
.chatcol .model-name { font-weight: 650; color: #334155; }
"""

# Gradio has no hotkey API: a document-level listener clicks the annotator's buttons by elem_id.
# Keys typed into a text field are left alone.
HOTKEYS_JS = """
<script>
document.addEventListener("keydown", function (ev) {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  const keys = {"1": "vote-left", "ArrowLeft": "vote-left", "2": "vote-tie", "3": "vote-right",
                "ArrowRight": "vote-right", "4": "vote-both-bad", "s": "vote-skip", "u": "vote-undo"};
  const id = keys[ev.key];
  if (!id) return;
  const el = document.getElementById(id);
  if (el && !el.disabled) { ev.preventDefault(); el.click(); }
});
</script>
"""
