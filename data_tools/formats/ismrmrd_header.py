"""The parts of the ISMRMRD XML header the readers need (also used for fastMRI's ``ismrmrd_header``).

Parsed with ElementTree rather than ``ismrmrd.xsd.CreateFromDocument`` on purpose: the schema
binding rejects headers that miss elements it marks as required, and converted vendor files
(mridata.org, fastMRI) are not always schema-complete. Only the first ``<encoding>`` is used.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import PipelineInputError

NS = "{http://www.ismrm.org/ISMRMRD}"


@dataclasses.dataclass(frozen=True)
class Limit:
    minimum: int
    maximum: int
    center: int


@dataclasses.dataclass
class HeaderInfo:
    """Encoded/recon matrix and FOV (x, y, z), encoding limits, receiver channels, trajectory."""

    encoded_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float]
    recon_matrix: tuple[int, int, int]
    recon_fov_mm: tuple[float, float, float]
    limits: dict[str, Limit]
    receiver_channels: int | None
    trajectory: str
    user: dict[str, str]

    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Encoded FOV / encoded matrix per axis. With a single encoded partition (2-D
        multi-slice), ISMRMRD stores the slice thickness as FOV z, which is returned as is."""
        return tuple(float(f) / max(int(m), 1) for f, m in zip(self.encoded_fov_mm, self.encoded_matrix))  # type: ignore[return-value]


def _find(el: ET.Element, path: str) -> ET.Element | None:
    return el.find("/".join(NS + p for p in path.split("/")))


def _triple(el: ET.Element | None, cast, where: str, path: Path | None) -> tuple:
    if el is None:
        raise PipelineInputError("ISMRMRD header lacks an element", path=path, field=where, expected="x, y, z values")
    vals = []
    for ax in "xyz":
        child = el.find(NS + ax)
        if child is None or child.text is None:
            raise PipelineInputError("ISMRMRD header lacks an element", path=path, field=f"{where}/{ax}",
                                     expected="a number")
        try:
            vals.append(cast(float(child.text)))
        except ValueError:
            raise PipelineInputError(f"'{child.text.strip()}' is not a number", path=path, field=f"{where}/{ax}",
                                     expected="a number") from None
    return tuple(vals)


def _positive(vals: tuple, where: str, path: Path | None, what: str) -> tuple:
    if min(vals) <= 0:
        raise PipelineInputError(f"{what} {list(vals)}", path=path, field=where, expected="positive x, y, z")
    return vals


def parse_header(xml: str | bytes, path: str | Path | None = None) -> HeaderInfo:
    """Parse an ISMRMRD XML header; raises PipelineInputError naming ``path`` on a bad header."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise PipelineInputError(f"ISMRMRD XML header does not parse ({exc})", path=path, field="xml",
                                 expected="an ismrmrdHeader XML document") from None
    enc = _find(root, "encoding")
    if enc is None:
        raise PipelineInputError("ISMRMRD header has no <encoding>", path=path, field="xml/encoding",
                                 expected="encodedSpace, reconSpace, encodingLimits")
    where = "encoding/encodedSpace/matrixSize"
    em = _positive(_triple(_find(enc, "encodedSpace/matrixSize"), int, where, path), where, path, "encoded matrix")
    where = "encoding/encodedSpace/fieldOfView_mm"
    ef = _positive(_triple(_find(enc, "encodedSpace/fieldOfView_mm"), float, where, path), where, path, "encoded FOV")
    rs = _find(enc, "reconSpace")
    rm = _triple(_find(enc, "reconSpace/matrixSize"), int, "reconSpace", path) if rs is not None else em
    rf = _triple(_find(enc, "reconSpace/fieldOfView_mm"), float, "reconSpace", path) if rs is not None else ef
    limits: dict[str, Limit] = {}
    lim_el = _find(enc, "encodingLimits")
    if lim_el is not None:
        for child in lim_el:
            vals = {c.tag.replace(NS, ""): c.text for c in child}
            try:
                limits[child.tag.replace(NS, "")] = Limit(int(vals.get("minimum") or 0), int(vals.get("maximum") or 0),
                                                          int(vals.get("center") or 0))
            except ValueError:
                raise PipelineInputError("non-integer encoding limit", path=path,
                                         field=f"encodingLimits/{child.tag.replace(NS, '')}",
                                         expected="integers minimum/maximum/center") from None
    rc = _find(root, "acquisitionSystemInformation/receiverChannels")
    channels = None
    if rc is not None and rc.text:
        try:
            channels = int(rc.text)
        except ValueError:
            raise PipelineInputError(f"'{rc.text.strip()}' is not an integer", path=path,
                                     field="acquisitionSystemInformation/receiverChannels",
                                     expected="the number of receiver channels") from None
    traj = _find(enc, "trajectory")
    user: dict[str, str] = {}
    up = _find(root, "userParameters")
    if up is not None:
        for p in up:
            name, value = p.find(NS + "name"), p.find(NS + "value")
            if name is not None and value is not None and name.text:
                user[name.text] = value.text or ""
    return HeaderInfo(encoded_matrix=em, encoded_fov_mm=ef, recon_matrix=rm, recon_fov_mm=rf, limits=limits,
                      receiver_channels=channels,
                      trajectory=(traj.text or "cartesian").strip() if traj is not None else "cartesian", user=user)
