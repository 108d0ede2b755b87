"""The apply statement: the commands of a batch of events → one JSON document → one statement.

:func:`command_document` folds the commands (``engine/commands.py``) of each event into rows,
one list per kind of row (``save``, ``jobs``, …), and tells each event's :class:`Guard`;
:func:`apply_statement` is the statement that writes such a document, assembled from the
fragments of ``apply.sql``.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Sequence
from typing import Any, assert_never

import attrs

from rochallor_server.engine.commands import (
    Audit,
    CancelOpenWork,
    ChainNext,
    Command,
    CompleteJob,
    CompleteUserTask,
    EnqueueDispatch,
    FailJob,
    FinishExecution,
    InsertExecution,
    InsertInstance,
    InsertJob,
    InsertTimer,
    InsertUserTask,
    MarkTimerFired,
    RetryJob,
    SaveInstance,
)
from rochallor_server.engine.model import Instance
from rochallor_server.store.postgres.statements import STATEMENTS

# The apply statement of a document: ``WITH`` + the fragments of each kind of row it has + the
# result columns, all whole blocks of ``apply.sql``. Each fragment reads its rows from the
# document ($1: one array per kind) and writes only the rows whose guard instance (``g``) was
# saved by ``apply_saved`` at the revision its event read. All fragments see one snapshot:
# ``command_document`` folds what an event does to rows it inserts itself into those rows, and
# the cancellations skip the rows that the statement ends otherwise.
#
# Each kind of row, with its fragments in statement order (a fragment reads only the CTEs
# before it). The guards come first and are in every statement: when the document has no rows
# of a guard's kind, its stand-in (an empty relation of the same name) takes its place, so no
# fragment needs another spelling for a document that saves or retries nothing.
_KINDS: dict[str, tuple[str, ...]] = {
    "save": ("apply_saved",),
    "job_retries": ("apply_retried_jobs",),
    "instances": ("apply_new_instances",),
    "executions": ("apply_new_executions",),
    "finishes": ("apply_finished_executions",),
    "jobs": ("apply_new_jobs",),
    "outbox": ("apply_new_outbox",),
    "job_ends": ("apply_ended_jobs",),
    "tasks": ("apply_new_tasks",),
    "task_completions": ("apply_completed_tasks",),
    "timers": ("apply_new_timers",),
    "timers_fired": ("apply_fired_timers",),
    "cancels": (
        "apply_cancels",
        "apply_cancelled_jobs",
        "apply_cancelled_tasks",
        "apply_cancelled_timers",
    ),
    "chains": ("apply_chains",),
    "audits": ("apply_audits",),
}
_STAND_INS = {"save": "apply_saved_none", "job_retries": "apply_retried_jobs_none"}
# The result columns: what the guards let through, in every statement; the wake-ups only with
# the rows that can make jobs claimable.
_GUARD_RESULTS = ("apply_result_saved", "apply_result_retried")
_RESULTS = {"jobs": ("apply_result_woken_new",), "job_retries": ("apply_result_woken_retried",)}
# Looked up at import so that a fragment missing from apply.sql fails at once.
_FRAGMENT_SQL = {
    block: STATEMENTS[block]
    for blocks in (*_KINDS.values(), _STAND_INS.values(), _GUARD_RESULTS, *_RESULTS.values())
    for block in blocks
}


# The columns of each kind of row, name → PostgreSQL type, declared once: by the column list of
# the ``jsonb_to_recordset`` that reads the kind in its first fragment. The builder below checks
# every row against it; a test checks apply.sql's INSERT, SET and SELECT lists and the schema's
# column types against it.
_RECORDSET = re.compile(r"jsonb_to_recordset\(\$1::jsonb -> '(\w+)'\) AS x\(([^)]*)\)")


def recordset_columns(sql: str) -> list[tuple[str, dict[str, str]]]:
    """Each ``jsonb_to_recordset($1::jsonb -> 'kind') AS x(column type, …)`` of some SQL, in
    order: the kind it reads and its columns (name → type)."""
    found = []
    for kind, column_list in _RECORDSET.findall(sql):
        columns: dict[str, str] = {}
        for item in column_list.split(","):
            name, type_ = item.split(None, 1)
            columns[name] = " ".join(type_.split())
        found.append((kind, columns))
    return found


def _declared(kind: str, block: str) -> dict[str, str]:
    found = [columns for read, columns in recordset_columns(STATEMENTS[block]) if read == kind]
    if len(found) != 1:
        raise ValueError(f"{block} must read {kind!r} with one jsonb_to_recordset")
    return found[0]


COLUMNS: dict[str, dict[str, str]] = {
    kind: _declared(kind, blocks[0]) for kind, blocks in _KINDS.items()
}
"""The declared columns of each kind of row of the document (name → PostgreSQL type)."""
_KEYS = {kind: frozenset(columns) for kind, columns in COLUMNS.items()}


@functools.cache
def apply_statement(kinds: frozenset[str]) -> str:
    """The statement writing a document with these keys (each set of kinds is one prepared
    statement: only the fragments it needs are planned and executed)."""
    if not kinds or not kinds <= _KINDS.keys():
        raise ValueError(f"no apply statement for a document with {sorted(kinds)}")
    ctes = []
    for kind, blocks in _KINDS.items():
        if kind in kinds:
            ctes += [_FRAGMENT_SQL[block] for block in blocks]
        elif kind in _STAND_INS:
            ctes.append(_FRAGMENT_SQL[_STAND_INS[kind]])
    results = [_FRAGMENT_SQL[block] for block in _GUARD_RESULTS] + [
        _FRAGMENT_SQL[block]
        for kind, blocks in _RESULTS.items()
        if kind in kinds
        for block in blocks
    ]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n       ".join(results)


@attrs.frozen
class Guard:
    """What an event's writes depend on: the existing instance it saves (at the revision it
    read), and the existing job it retries (as it read it: status, worker, lease)."""

    instance: str | None = None
    retried_jobs: tuple[str, ...] = ()


def command_document(
    events: Sequence[Sequence[Command]], *, audit: bool
) -> tuple[dict[str, Any] | None, list[Guard]]:
    """The apply statement's document for the commands of some events (``None`` when nothing
    is written), and each event's guard (:class:`Guard`).

    The rows of an event that saves an instance are guarded by it (``g``): they are written
    only if the save applies at the revision the event read. One statement sees one snapshot,
    so it cannot update a row it inserts: a command that changes a row inserted by an earlier
    command of the same event is folded into that row here (the core itself inserts a step
    finished when it also left it; work inserted by an event and cancelled by it later is
    inserted cancelled). At most one event per guard instance.
    """
    builder = _Document()
    guards = [builder.add_event(commands, audit=audit) for commands in events]
    saved = [g.instance for g in guards if g.instance is not None]
    if len(set(saved)) != len(saved):
        raise ValueError("two events of one instance in one apply")
    for kind, rows in builder.rows.items():
        declared = _KEYS[kind]
        for row in rows:
            if row.keys() != declared:
                missing, unknown = declared - row.keys(), row.keys() - declared
                raise ValueError(
                    f"a {kind!r} row does not match apply.sql: missing {sorted(missing)},"
                    f" unknown {sorted(unknown)}"
                )
    return (builder.rows or None), guards


class _Document:
    """Builds a ``command_document``: one list of rows per kind, new rows indexed by id."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.guard: str | None = None
        self.retry_guard: tuple[str, ...] = ()
        self.new: dict[str, dict[str, dict[str, Any]]] = {}

    def add_event(self, commands: Sequence[Command], *, audit: bool) -> Guard:
        created = {c.instance.id for c in commands if isinstance(c, InsertInstance)}
        # The guard: the existing instance this event saves (a new one cannot have moved on).
        self.guard = next(
            (
                c.instance.id
                for c in commands
                if isinstance(c, SaveInstance) and c.instance.id not in created
            ),
            None,
        )
        self.new = {"instances": {}, "executions": {}, "jobs": {}, "tasks": {}, "timers": {}}
        inserted_jobs = {c.job.id for c in commands if isinstance(c, InsertJob)}
        # The jobs of existing rows it retries; the first guards the event's audit entries
        # (the core's retry outcome is one retry and its audit entry).
        self.retry_guard = tuple(
            c.job.id for c in commands if isinstance(c, RetryJob) and c.job.id not in inserted_jobs
        )
        for c in commands:
            self.add(c, audit=audit)
        return Guard(self.guard, self.retry_guard)

    def _row(self, kind: str, row: dict[str, Any]) -> None:
        declared = _KEYS[kind]
        if "g" in declared:
            row["g"] = self.guard
        if "j" in declared:
            row["j"] = self.retry_guard[0] if self.retry_guard else None
        self.rows.setdefault(kind, []).append(row)
        if kind in self.new:
            self.new[kind][row["id"]] = row

    def add(self, c: Command, *, audit: bool) -> None:
        new = self.new
        match c:
            case InsertInstance(instance=i):
                self._row("instances", _instance_row(i))
            case SaveInstance(instance=i):
                if i.id in new["instances"]:
                    new["instances"][i.id].update(_instance_row(i))
                else:
                    self._row("save", {"id": i.id, "revision": i.revision, **_changes(i)})
            case InsertExecution(execution=e, input_snapshot=snapshot, output_snapshot=output):
                self._row(
                    "executions",
                    {
                        "id": e.id,
                        "instance_id": e.instance_id,
                        "step_id": e.step_id,
                        "step_type": e.step_type,
                        "attempt_number": e.attempt_number,
                        "status": e.status.value,
                        "started_at": e.started_at,
                        "ended_at": e.ended_at,
                        "failure_reason": e.failure_reason,
                        "input_snapshot": snapshot,
                        "output_snapshot": output,
                    },
                )
            case FinishExecution():
                finish = {
                    "id": c.execution_id,
                    "status": c.status.value,
                    "ended_at": c.ended_at,
                    "failure_reason": c.failure_reason,
                    "output_snapshot": c.output_snapshot,
                }
                if c.execution_id in new["executions"]:
                    new["executions"][c.execution_id].update(finish)
                else:
                    self._row("finishes", finish)
            case InsertJob(job=j):
                self._row(
                    "jobs",
                    {
                        "id": j.id,
                        "instance_id": j.instance_id,
                        "step_execution_id": j.step_execution_id,
                        "step_id": j.step_id,
                        "job_type": j.job_type,
                        "status": j.status.value,
                        "worker_id": j.worker_id,
                        "locked_at": j.locked_at,
                        "lock_expires_at": j.lock_expires_at,
                        "retries_remaining": j.retries_remaining,
                        "payload": j.payload,
                        "created_at": j.created_at,
                        "ended_at": None,
                    },
                )
            case CompleteJob() | FailJob():
                status = "COMPLETED" if isinstance(c, CompleteJob) else "FAILED"
                job = new["jobs"].get(c.job_id)
                if job is not None:
                    job.update(status=status, ended_at=c.at)
                    job["worker_id"] = c.worker_id or job["worker_id"]
                else:
                    ended = {"id": c.job_id, "status": status, "worker_id": c.worker_id, "at": c.at}
                    self._row("job_ends", ended)
            case RetryJob():
                job = new["jobs"].get(c.job.id)
                if job is not None:
                    job.update(
                        status="UNLOCKED",
                        worker_id=None,
                        locked_at=None,
                        lock_expires_at=None,
                        retries_remaining=c.retries_remaining,
                    )
                else:
                    # the job as the event read it: the retry applies only to that
                    expected = {
                        "status": c.job.status.value,
                        "worker_id": c.job.worker_id,
                        "locked_at": c.job.locked_at,
                    }
                    retry = {"id": c.job.id, "retries_remaining": c.retries_remaining}
                    self._row("job_retries", {**retry, **expected})
            case InsertUserTask(task=t):
                self._row(
                    "tasks",
                    {
                        "id": t.id,
                        "instance_id": t.instance_id,
                        "step_execution_id": t.step_execution_id,
                        "step_id": t.step_id,
                        "status": t.status.value,
                        "payload": t.payload,
                        "created_at": t.created_at,
                        "result": None,
                        "completed_by": None,
                        "completed_at": None,
                    },
                )
            case CompleteUserTask():
                completion = {"result": c.result, "completed_by": c.completed_by}
                task = new["tasks"].get(c.task_id)
                if task is not None:
                    task.update(completion, status="COMPLETED", completed_at=c.at)
                else:
                    self._row("task_completions", {"id": c.task_id, "at": c.at, **completion})
            case InsertTimer(timer=t):
                self._row(
                    "timers",
                    {
                        "id": t.id,
                        "instance_id": t.instance_id,
                        "step_execution_id": t.step_execution_id,
                        "target_step_id": t.target_step_id,
                        "fire_at": t.fire_at,
                        "interrupting": t.interrupting,
                        "status": t.status.value,
                    },
                )
            case MarkTimerFired():
                timer = new["timers"].get(c.timer_id)
                if timer is not None:
                    timer["status"] = "FIRED"
                else:
                    self._row("timers_fired", {"id": c.timer_id})
            case CancelOpenWork():
                self._cancel_new_work(c)
                self._row(
                    "cancels",
                    {
                        "instance_id": c.instance_id,
                        "at": c.at,
                        "execution_ids": None if c.execution_ids is None else list(c.execution_ids),
                        "timers_only": c.timers_only,
                    },
                )
            case Audit(entry=entry):
                if audit:
                    self._row(
                        "audits",
                        {
                            "actor": entry.actor,
                            "principal": entry.principal,
                            "kind": entry.kind,
                            "instance_id": entry.instance_id,
                            "detail": entry.detail,
                        },
                    )
            case EnqueueDispatch():
                self._row(
                    "outbox",
                    {
                        "id": c.id,
                        "job_id": c.job_id,
                        "instance_id": c.instance_id,
                        "job_type": c.job_type,
                        # bytes travel in the JSON document as base64
                        "payload": base64.b64encode(c.payload).decode("ascii"),
                    },
                )
            case ChainNext():
                # made after commit (or by the chain sweeper after a crash), exactly once
                self._row(
                    "chains",
                    {
                        "parent_instance_id": c.parent_instance_id,
                        "definition_id": c.definition_id,
                        "variables": c.variables,
                        "business_key": c.business_key,
                    },
                )
            case _:
                assert_never(c)

    def _cancel_new_work(self, c: CancelOpenWork) -> None:
        scope = None if c.execution_ids is None else set(c.execution_ids)

        def targeted(row: dict[str, Any]) -> bool:
            return row["instance_id"] == c.instance_id and (
                scope is None or row["step_execution_id"] in scope
            )

        for row in self.new["timers"].values():
            if targeted(row) and row["status"] == "PENDING":
                row["status"] = "CANCELLED"
        if c.timers_only:
            return
        for row in self.new["jobs"].values():
            if targeted(row) and row["status"] in ("UNLOCKED", "LOCKED"):
                row.update(status="CANCELLED", ended_at=c.at)
        for row in self.new["tasks"].values():
            if targeted(row) and row["status"] == "OPEN":
                row["status"] = "CANCELLED"


def _instance_row(i: Instance) -> dict[str, Any]:
    return {
        "id": i.id,
        "definition_id": i.definition_id,
        "definition_version": i.definition_version,
        "started_at": i.started_at,
        "business_key": i.business_key,
        **_changes(i),
    }


def _changes(i: Instance) -> dict[str, Any]:
    """The columns an event may change (what ``apply_saved`` writes)."""
    return {
        "status": i.status.value,
        "current_step_ids": list(i.current_step_ids),
        "variables": i.variables,
        "join_arrivals": i.join_arrivals,
        "step_attempts": i.step_attempts,
        "completed_at": i.completed_at,
        "failure_reason": i.failure_reason,
    }
