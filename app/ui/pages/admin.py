"""Endpoints and users. Everyone in the studio sees the teacher/judge endpoints and can test a
connection; admins add and delete endpoints (the API key is write-only: stored encrypted, never shown
again) and manage users and their roles (the role policy lives in app/auth/policy.py)."""

from __future__ import annotations

import gradio as gr

from app.enums import Role
from app.errors import InvalidInput
from app.services import endpoints as ep_service
from app.services import users as user_service
from app.ui.common import Ui, number_or_none, parse_id, shows_errors
from app.ui.widgets.html import badge, error_box, esc, ok_box, table, when
from gad.llm.api_client import Endpoint

# The endpoint settings offered in the form, straight from gad's Endpoint model (help texts included).
PARAMS = ["concurrency", "rpm", "tpm", "max_tokens", "temperature", "price_prompt", "price_completion"]


class AdminPage:
    def __init__(self, ui: Ui):
        self.ui = ui

    def build(self) -> AdminPage:
        gr.HTML('<div class="gad-h">Teacher and judge endpoints</div><div class="gad-hint">OpenAI-compatible '
                'servers (OpenAI, vLLM, a local <code>gad-studio devserver</code>). Keys are stored encrypted and '
                'never shown again.</div>')
        self.endpoints = gr.HTML(elem_id="endpoints-table")
        with gr.Row():
            self.test_pick = gr.Dropdown(label="Endpoint", choices=[], scale=3, elem_id="endpoint-pick")
            self.test_btn = gr.Button("Test connection", scale=1, size="sm", elem_id="endpoint-test")
            self.delete_btn = gr.Button("Delete", variant="stop", scale=1, size="sm", elem_id="endpoint-delete")
        self.test_result = gr.HTML(elem_id="endpoint-test-result")
        with gr.Accordion("Add an endpoint", open=False, elem_id="endpoint-add", visible=True) as self.add_box:
            with gr.Row():
                self.ep_name = gr.Textbox(label="Name", placeholder="gpt-5-teacher", elem_id="endpoint-name")
                self.ep_url = gr.Textbox(label="Base URL", placeholder="https://api.openai.com/v1",
                                         elem_id="endpoint-url")
                self.ep_model = gr.Textbox(label="Model", placeholder="gpt-5-chat-latest", elem_id="endpoint-model")
            with gr.Row():
                self.ep_key = gr.Textbox(label="API key (write-only)", type="password", elem_id="endpoint-key",
                                         info="stored encrypted; leave empty for local servers")
                self.ep_env = gr.Textbox(label="…or the name of an environment variable holding it",
                                         placeholder="OPENAI_API_KEY")
            with gr.Row():
                self.ep_params = [gr.Textbox(label=p, placeholder=f"default: {Endpoint.model_fields[p].default}",
                                             info=Endpoint.model_fields[p].description) for p in PARAMS]
            self.ep_create = gr.Button("Add endpoint", variant="primary", elem_id="endpoint-create")
        with gr.Column(visible=False) as self.users_box:
            gr.HTML('<div class="gad-h">Users</div>')
            self.users = gr.HTML(elem_id="users-table")
            with gr.Row():
                self.u_name = gr.Textbox(label="New user", placeholder="name", elem_id="user-name")
                self.u_role = gr.Dropdown([r.value for r in Role], value=Role.researcher.value, label="Role",
                                          elem_id="user-role")
                self.u_password = gr.Textbox(label="Password", type="password", elem_id="user-password",
                                             info="at least 8 characters")
                self.u_create = gr.Button("Create user", variant="primary", size="sm", elem_id="user-create")
            with gr.Row():
                self.u_pick = gr.Dropdown(label="User", choices=[], elem_id="user-pick")
                self.u_new_role = gr.Dropdown([r.value for r in Role], label="Set role")
                self.u_active = gr.Checkbox(label="Active", value=True)
                self.u_reset = gr.Textbox(label="Reset password", type="password", elem_id="user-reset",
                                          info="optional: a new password for this user (ends their sessions)")
                self.u_update = gr.Button("Update user", size="sm", elem_id="user-update")
            self.user_result = gr.HTML(elem_id="user-result")
        with gr.Accordion("My account: change my password", open=False, elem_id="my-account"):
            with gr.Row():
                self.my_current = gr.Textbox(label="Current password", type="password", elem_id="my-current")
                self.my_new = gr.Textbox(label="New password", type="password", elem_id="my-new",
                                         info="at least 8 characters")
                self.my_repeat = gr.Textbox(label="New password again", type="password", elem_id="my-repeat")
                self.my_change = gr.Button("Change my password", size="sm", elem_id="my-change")
            self.my_result = gr.HTML(elem_id="my-result")
        return self

    def wire(self) -> None:
        self.test_btn.click(self.test, [self.test_pick], [self.test_result])
        self.delete_btn.click(self.delete, [self.test_pick], [self.test_result, self.endpoints, self.test_pick])
        self.ep_create.click(self.create_endpoint, {self.ep_name, self.ep_url, self.ep_model, self.ep_key,
                                                    self.ep_env, *self.ep_params},
                             [self.test_result, self.endpoints, self.test_pick, self.ep_key])
        self.u_create.click(self.create_user, [self.u_name, self.u_role, self.u_password],
                            [self.user_result, self.users, self.u_pick, self.u_password])
        self.u_update.click(self.update_user, [self.u_pick, self.u_new_role, self.u_active, self.u_reset],
                            [self.user_result, self.users, self.u_pick, self.u_reset])
        self.my_change.click(self.change_password, [self.my_current, self.my_new, self.my_repeat],
                             [self.my_result, self.my_current, self.my_new, self.my_repeat])

    def load_inputs(self) -> list:
        return [self.test_pick, self.u_pick]

    def load_outputs(self) -> list:
        return [self.endpoints, self.test_pick, self.add_box, self.users_box, self.users, self.u_pick]

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, endpoint, user, request: gr.Request):
        is_admin = self.ui.can(request, "users")
        endpoints, pick = self._endpoints(request, parse_id(endpoint))
        users, upick = self._users(request, parse_id(user)) if is_admin else ("", gr.skip())
        return [endpoints, pick, gr.update(visible=self.ui.can(request, "endpoints.write")),
                gr.update(visible=is_admin), users, upick]

    def _endpoints(self, request, selected: int | None = None):
        with self.ui.session(request, "endpoints.read") as (s, _):
            views = [ep_service.public_view(e) for e in ep_service.list_endpoints(s)]
        rows = [[v["id"], esc(v["name"]), esc(v["base_url"]), esc(v["model"]), esc(v["key"]),
                 esc(", ".join(f"{k} {val}" for k, val in (v["params"] or {}).items()) or "defaults")] for v in views]
        html = table(["#", "name", "base URL", "model", "key", "settings"], rows, num={0}, raw={1, 2, 3, 4, 5},
                     empty="No endpoints yet.")
        choices = [(f'{v["name"]} ({v["model"]})', v["id"]) for v in views]
        value = selected if selected in {c[1] for c in choices} else (choices[0][1] if choices else None)
        return html, gr.update(choices=choices, value=value)

    def _users(self, request, selected: int | None = None):
        with self.ui.session(request, "users") as (s, _):
            users = user_service.list_users(s)
            rows = [[u.id, esc(u.name), badge(u.role), "active" if u.active else "disabled", when(u.created_at)]
                    for u in users]
            choices = [(f"{u.name} ({u.role})", u.id) for u in users]
        selected = selected if selected in {c[1] for c in choices} else None
        return (table(["#", "name", "role", "state", "created"], rows, num={0}, raw={1, 2}),
                gr.update(choices=choices, value=selected))

    @shows_errors
    def test(self, endpoint_id, request: gr.Request):
        endpoint_id = parse_id(endpoint_id)
        if endpoint_id is None:
            raise InvalidInput("choose an endpoint to test")
        with self.ui.session(request, "endpoints.test") as (s, _):
            result = ep_service.test_connection(ep_service.get_endpoint(s, endpoint_id), self.ui.ctx.settings)
        if result["ok"]:
            return ok_box(f"Connected in {result['latency_ms']:.0f} ms. The model answered: {result['answer']!r}")
        return error_box(f"Connection failed: {result['error']}")

    @shows_errors
    def delete(self, endpoint_id, request: gr.Request):
        endpoint_id = parse_id(endpoint_id)
        if endpoint_id is None:
            raise InvalidInput("choose an endpoint to delete")
        with self.ui.session(request, "endpoints.write") as (s, _):
            ep_service.delete_endpoint(s, endpoint_id)
            s.commit()
        html, pick = self._endpoints(request)
        return ok_box(f"Endpoint #{endpoint_id} deleted."), html, pick

    @shows_errors
    def create_endpoint(self, data: dict, request: gr.Request):
        name, url, model, key, env = (data[c] for c in (self.ep_name, self.ep_url, self.ep_model, self.ep_key,
                                                         self.ep_env))
        values = {p: number_or_none(data[c], p, int if p in ("concurrency", "max_tokens") else float)
                  for p, c in zip(PARAMS, self.ep_params)}
        with self.ui.session(request, "endpoints.write") as (s, _):
            row = ep_service.create_endpoint(s, self.ui.ctx.settings, name=(name or "").strip(),
                                             base_url=(url or "").strip(), model=(model or "").strip(),
                                             api_key=key or None, key_env_var=(env or "").strip() or None, **values)
            s.commit()
            new_id, new_name = row.id, row.name
        html, pick = self._endpoints(request, new_id)
        return ok_box(f"Endpoint “{new_name}” added. Test its connection above."), html, pick, ""

    @shows_errors
    def create_user(self, name, role, password, request: gr.Request):
        with self.ui.session(request, "users") as (s, _):
            user = user_service.create_user(s, (name or "").strip(), role, password or None)
            s.commit()
            new_id, new_name = user.id, user.name
        html, pick = self._users(request, new_id)
        return ok_box(f"User “{new_name}” created ({role})."), html, pick, ""

    @shows_errors
    def update_user(self, user_id, role, active, password, request: gr.Request):
        user_id = parse_id(user_id)
        if user_id is None:
            raise InvalidInput("choose a user")
        with self.ui.session(request, "users") as (s, admin):
            user = user_service.update_user(s, user_id, role=role or None, active=bool(active), actor=admin)
            if password:
                user_service.set_password(s, user, password)
            s.commit()
            name, own = user.name, user.id == admin.id
        html, pick = self._users(request, user_id)
        done = f"User “{name}” updated" + (": new password set, their sessions ended." if password else ".")
        if password and own:
            done += " That includes this one: log in again with the new password."
        return ok_box(done), html, pick, ""

    def change_password(self, current, new, repeat, request: gr.Request):
        """Anyone changes their own password, proving the current one. The new one ends every session
        of the user, this page's included (a stolen cookie must stop working): they log in again."""
        from app.auth.passwords import verify_password
        from app.errors import StudioError

        try:
            if not new or new != repeat:
                raise InvalidInput("the two new passwords differ" if new else "type a new password", field="password")
            with self.ui.session(request) as (s, user):
                if not verify_password(user.password_hash, current or ""):
                    raise InvalidInput("the current password is not right", field="current")
                user_service.set_password(s, user, new)
                s.commit()
        except StudioError as err:  # stays on the page, next to the button
            return error_box(f"Password not changed: {err.message}"), gr.skip(), gr.skip(), gr.skip()
        return ('<div class="okbox">Password changed. Every session of yours has ended, this one too: '
                '<a href="/login?next=/ui/">log in again</a> with the new password.</div>', "", "", "")
