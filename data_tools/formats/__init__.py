"""Readers and writers for real MRI file formats, one module per format.

=================  =====================================================  ==============================
module             format                                                 main entry points
=================  =====================================================  ==============================
``ismrmrd``        ISMRMRD HDF5 raw data (mridata.org knees)              ``read_ismrmrd``, ``write_ismrmrd``
``bart``           BART ``.cfl``/``.hdr`` arrays                          ``read_cfl``, ``write_cfl``, ``subject_from_bart``
``fastmri``        fastMRI HDF5 (``kspace``, ``reconstruction_rss``)       ``read_fastmri``, ``write_fastmri``, ``subject_from_fastmri``
``images``         NIfTI (nibabel) and MHD/MHA (SimpleITK) images/labels  ``read_image``, ``write_image``, ``same_geometry``
``detect``         format sniffing + one entry to a :class:`Subject`      ``detect_format``, ``read_any_subject``
=================  =====================================================  ==============================

Every reader raises :class:`data_tools.errors.PipelineInputError` naming the file and what was
expected; every writer is atomic (:func:`data_tools.atomic.atomic_path`). k-space always comes
out in the project convention of :mod:`data_tools.fft` (coil-first ``(coil, x, y, z)``, DC at
``n // 2``). Import the submodule you need (``from data_tools.formats.bart import read_cfl``);
this package imports nothing heavy.
"""
