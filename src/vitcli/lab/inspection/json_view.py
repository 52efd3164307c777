"""`vitcli inspect --json`: the report's numbers as plain lists and numbers, one key per figure drawn."""

from __future__ import annotations

from vitcli.lab.inspection.analysis import InspectReport
from vitcli.lab.inspection.evolution import Evolution


def report_dict(report: InspectReport) -> dict:
    out: dict = {
        "checkpoint": str(report.checkpoint),
        "model": report.model,
        "classes": report.classes,
        "grid_size": list(report.grid_size) if report.grid_size else None,
        "query": report.query,
        "skipped": report.skipped,
        "notes": report.notes,
    }
    pictures = {name: [str(p) for p in paths] for name, paths in report.pictures.items()}
    if report.sample is not None:
        out["sample"] = {
            "split": report.sample.split,
            "images": len(report.sample.labels),
            "of": report.sample.size,
        }
    if report.distance is not None:
        square = report.cell[0] == report.cell[1]
        out["distance"] = {
            "pixels": report.distance.tolist(),  # [block][head]
            # In grid steps, where a step is the same across and down (not so for non-square images).
            "patches": (report.distance / report.cell[0]).tolist() if square else None,
            "uniform_pixels": report.uniform_distance,  # what attending to every patch alike gives
            "cell_pixels": list(report.cell),
            "picture": pictures.get("distance"),
        }
    if report.similarity is not None:
        rows, cols = report.grid_size
        out["positions"] = {
            "similarity": report.similarity.reshape(rows * cols, rows * cols).tolist(),  # [patch][patch]
            "picture": pictures.get("positions"),
        }
    if report.components is not None:
        out["filters"] = {
            "source": report.components.source,
            "components": report.components.patches.tolist(),  # [k][channel][row][col]
            "explained_variance": report.components.explained.tolist(),
            "picture": pictures.get("filters"),
        }
    if report.class_maps is not None:
        out["classes"] = {
            "images": report.class_counts.tolist(),
            "maps": report.class_maps.tolist(),  # [class][block][row][col], the mean of the heads
            "picture": pictures.get("classes"),
        }
    if report.evolution is not None:
        out["evolution"] = {**_evolution_dict(report.evolution), "picture": pictures.get("evolution")}
    if report.against is not None:
        out["against"] = {**report.against.to_dict(), "picture": pictures.get("against")}
    return out


def _evolution_dict(evolution: Evolution) -> dict:
    return {
        "epochs": evolution.epochs,
        "images": [
            {
                "source": source,
                "label": evolution.labels[i],
                "maps": evolution.maps[:, i].tolist(),  # [epoch][block][row][col]
            }
            for i, source in enumerate(evolution.sources)
        ],
    }
